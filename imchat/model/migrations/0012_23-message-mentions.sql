-- The members a community message calls, joined by commas ('-1': everyone).
ALTER TABLE `message` ADD COLUMN `mentions` VARCHAR(1000) NOT NULL DEFAULT '';
