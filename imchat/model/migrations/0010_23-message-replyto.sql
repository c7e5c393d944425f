-- The message a message answers (0: none).
ALTER TABLE `message` ADD COLUMN `replyto` BIGINT NOT NULL DEFAULT 0;
