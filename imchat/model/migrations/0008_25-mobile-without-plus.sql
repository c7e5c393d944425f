-- One mobile, one account: `+139...` and `139...` are one number, stored without the +
-- (service.user.canonical_mobile). An account whose number is already taken in that form
-- (the same person registered twice) keeps its + and stays reachable by its id.
UPDATE `user` SET `mobile` = SUBSTR(`mobile`, 2)
WHERE `mobile` LIKE '+%'
  AND SUBSTR(`mobile`, 2) NOT IN (SELECT `m` FROM (SELECT `mobile` AS `m` FROM `user`) AS `taken`);
