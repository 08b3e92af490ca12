// Package web is the HTTP adapter.
package web

import _ "net/http"

// Path is the orders' path.
const Path = "/orders"
