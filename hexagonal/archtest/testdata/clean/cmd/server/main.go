// Command server wires the fixture; it is in no layer.
package main

import (
	"database/sql"
	"net/http"

	"example.com/clean/adapters/pg"
	"example.com/clean/adapters/web"
)

func main() {
	_ = http.ListenAndServe(":8080", web.Handler(pg.Repo{DB: &sql.DB{}}))
}
