"""The fieldsync wire protocol as a library: error codes, message schemas, hybrid logical clock,
pure merge rules and the reference tablet client. Never imports Flask or a database session."""
