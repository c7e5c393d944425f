"""The schema as released at e50eb6f, the last release before migrations: each of its
tables that is missing is created, with its indexes, by the DDL Pony made for it then.

A database made by e50eb6f (or later, before this migration) has every table and is left
as it is; a new database gets them all, so every later migration finds the same tables.
"""
from yoyo import step

from imchat.model.migrate import dialect, table_exists

# table: (SQLite statements, MySQL statements), in Pony's own order and words.
TABLES = {
    'community': (
        ['CREATE TABLE "community" ("id" INTEGER PRIMARY KEY AUTOINCREMENT, '
         '"name" VARCHAR(30) NOT NULL, "ownerid" BIGINT NOT NULL, '
         '"icon" VARCHAR(500) NOT NULL, "cate" INTEGER NOT NULL, '
         '"memo" VARCHAR(140) NOT NULL, "createat" BIGINT NOT NULL)',
         'CREATE INDEX "idx_community__ownerid" ON "community" ("ownerid")'],
        ['CREATE TABLE `community` (`id` BIGINT PRIMARY KEY AUTO_INCREMENT, '
         '`name` VARCHAR(30) NOT NULL, `ownerid` BIGINT NOT NULL, '
         '`icon` VARCHAR(500) NOT NULL, `cate` INTEGER NOT NULL, '
         '`memo` VARCHAR(140) NOT NULL, `createat` BIGINT NOT NULL)',
         'CREATE INDEX `idx_community__ownerid` ON `community` (`ownerid`)'],
    ),
    'contact': (
        ['CREATE TABLE "contact" ("id" INTEGER PRIMARY KEY AUTOINCREMENT, '
         '"ownerid" BIGINT NOT NULL, "dstid" BIGINT NOT NULL, "cate" INTEGER NOT NULL, '
         '"memo" VARCHAR(140) NOT NULL, "createat" BIGINT NOT NULL, '
         '"joined_msgid" BIGINT NOT NULL, '
         'CONSTRAINT "unq_contact__ownerid_cate_dstid" UNIQUE ("ownerid", "cate", "dstid"))',
         'CREATE INDEX "idx_contact__cate_dstid" ON "contact" ("cate", "dstid")'],
        ['CREATE TABLE `contact` (`id` BIGINT PRIMARY KEY AUTO_INCREMENT, '
         '`ownerid` BIGINT NOT NULL, `dstid` BIGINT NOT NULL, `cate` INTEGER NOT NULL, '
         '`memo` VARCHAR(140) NOT NULL, `createat` BIGINT NOT NULL, '
         '`joined_msgid` BIGINT NOT NULL, '
         'CONSTRAINT `unq_contact__ownerid_cate_dstid` UNIQUE (`ownerid`, `cate`, `dstid`))',
         'CREATE INDEX `idx_contact__cate_dstid` ON `contact` (`cate`, `dstid`)'],
    ),
    'message': (
        ['CREATE TABLE "message" ("id" INTEGER PRIMARY KEY AUTOINCREMENT, '
         '"userid" BIGINT NOT NULL, "cmd" INTEGER NOT NULL, "dstid" BIGINT NOT NULL, '
         '"media" INTEGER NOT NULL, "content" VARCHAR(4000) NOT NULL, '
         '"pic" VARCHAR(1000) NOT NULL, "url" VARCHAR(1000) NOT NULL, '
         '"memo" VARCHAR(140) NOT NULL, "amount" BIGINT NOT NULL, '
         '"createat" BIGINT NOT NULL, "clientid" VARCHAR(64))',
         'CREATE INDEX "idx_message__cmd_dstid_id" ON "message" ("cmd", "dstid", "id")',
         'CREATE INDEX "idx_message__userid_clientid" ON "message" ("userid", "clientid")',
         'CREATE INDEX "idx_message__userid_id" ON "message" ("userid", "id")'],
        ['CREATE TABLE `message` (`id` BIGINT PRIMARY KEY AUTO_INCREMENT, '
         '`userid` BIGINT NOT NULL, `cmd` INTEGER NOT NULL, `dstid` BIGINT NOT NULL, '
         '`media` INTEGER NOT NULL, `content` VARCHAR(4000) NOT NULL, '
         '`pic` VARCHAR(1000) NOT NULL, `url` VARCHAR(1000) NOT NULL, '
         '`memo` VARCHAR(140) NOT NULL, `amount` BIGINT NOT NULL, '
         '`createat` BIGINT NOT NULL, `clientid` VARCHAR(64))',
         'CREATE INDEX `idx_message__cmd_dstid_id` ON `message` (`cmd`, `dstid`, `id`)',
         'CREATE INDEX `idx_message__userid_clientid` ON `message` (`userid`, `clientid`)',
         'CREATE INDEX `idx_message__userid_id` ON `message` (`userid`, `id`)'],
    ),
    'token': (
        ['CREATE TABLE "token" ("key" VARCHAR(64) NOT NULL PRIMARY KEY, '
         '"userid" BIGINT NOT NULL, "createat" BIGINT NOT NULL, "expireat" BIGINT NOT NULL)',
         'CREATE INDEX "idx_token__userid" ON "token" ("userid")'],
        ['CREATE TABLE `token` (`key` VARCHAR(64) PRIMARY KEY, '
         '`userid` BIGINT NOT NULL, `createat` BIGINT NOT NULL, `expireat` BIGINT NOT NULL)',
         'CREATE INDEX `idx_token__userid` ON `token` (`userid`)'],
    ),
    'user': (
        ['CREATE TABLE "user" ("id" INTEGER PRIMARY KEY AUTOINCREMENT, '
         '"mobile" VARCHAR(20) UNIQUE NOT NULL, "passwd" VARCHAR(200) NOT NULL, '
         '"nickname" VARCHAR(40) NOT NULL, "avatar" VARCHAR(500) NOT NULL, '
         '"sex" VARCHAR(2) NOT NULL, "memo" VARCHAR(140) NOT NULL, '
         '"createat" BIGINT NOT NULL, "synced_msgid" BIGINT NOT NULL)'],
        ['CREATE TABLE `user` (`id` BIGINT PRIMARY KEY AUTO_INCREMENT, '
         '`mobile` VARCHAR(20) UNIQUE NOT NULL, `passwd` VARCHAR(200) NOT NULL, '
         '`nickname` VARCHAR(40) NOT NULL, `avatar` VARCHAR(500) NOT NULL, '
         '`sex` VARCHAR(2) NOT NULL, `memo` VARCHAR(140) NOT NULL, '
         '`createat` BIGINT NOT NULL, `synced_msgid` BIGINT NOT NULL)'],
    ),
}


def create_missing_tables(conn):
    which = 0 if dialect(conn) == 'sqlite' else 1
    cursor = conn.cursor()
    try:
        for table, statements in TABLES.items():
            if table_exists(conn, table):
                continue
            for statement in statements[which]:
                cursor.execute(statement)
    finally:
        cursor.close()


steps = [step(create_missing_tables)]
