"""Operations support: the Sigfox API v2 compatible REST API on PostgreSQL."""
