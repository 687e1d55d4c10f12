"""PostgreSQL adapters: every SQL statement of the hub, and the migrations."""
