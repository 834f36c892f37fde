"""The API's storage: one module per entity, the only place in `oss` that writes SQL.

Every module builds its statements with `oss.storage.sql` (conditions with
numbered arguments, the paged SELECT, the INSERT of given columns, the UPDATE
of changed ones) and confines its lookups to the caller's group subtree with
`oss.storage.scope`. Functions take a connection (or the pool) and return
rows; request parsing, validation and the Sigfox v2 body shapes stay above,
in `oss.api`.
"""
