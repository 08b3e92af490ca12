// Package web is the HTTP adapter.
package web

import (
	"net/http"

	"example.com/clean/app"
	"example.com/clean/domain"
)

// Handler answers HTTP requests.
func Handler(r app.Repository) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if err := app.Place(req.Context(), r, domain.Order{ID: req.URL.Path}); err != nil {
			http.Error(w, err.Error(), http.StatusUnprocessableEntity)
		}
	})
}
