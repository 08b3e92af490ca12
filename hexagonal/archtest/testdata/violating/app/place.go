// Package app imports the web adapter, an outer layer.
package app

import "example.com/violating/adapters/web"

// Place places an order.
func Place() string { return web.Path }
