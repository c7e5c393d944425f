-- 1: a message passed on from another conversation.
ALTER TABLE `message` ADD COLUMN `forwarded` INTEGER NOT NULL DEFAULT 0;
