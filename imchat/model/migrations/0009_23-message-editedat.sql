-- When a message's text was last edited (cmd 18; 0: never).
ALTER TABLE `message` ADD COLUMN `editedat` BIGINT NOT NULL DEFAULT 0;
