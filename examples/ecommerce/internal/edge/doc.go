// Package edge is the edge of the ecommerce example: an OAuth2 token
// server, the API gateway in front of the services and the web and
// mobile backends for frontends.
package edge
