package pglog

// Schema returns the quoted name of the schema of l.
func Schema(l *Log) string { return l.sql.schema }
