"""Storage: what is stored, and how the server reaches it. Import from the module that
owns a name; this package re-exports nothing.

- `entities`: the Pony entities (`define_database`), their column limits and small
  `to_dict` views. Services own every transaction.
- `stream`: storing messages under dense ids that commit in order (`insert_messages`,
  `take_ids`, `ensure_stream`, `StreamMoved`): the message writer's hot path.
- `sql`: SQL the services write themselves (`execute_sql`), MySQL literals and
  escaping, `MessageId`, `is_duplicate_key`.
- `engine`: the database a URL names: parsing it, creating and binding the database,
  probing it.
- `pool`: the connection pool shared by every greenlet, and the Pony providers using it.
- `migrate` (with `migrations/`): versioned schema changes; `backup`: a consistent copy
  of a live SQLite database.
"""
