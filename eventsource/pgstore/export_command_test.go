package pgstore

// Migration returns the SQL of migration v (from v-1 to v), "{s}" standing
// for the quoted schema name.
func Migration(v int) string { return migrations[v-1] }
