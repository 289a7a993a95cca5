// Package console serves the privacy console, a single-page app for
// operators, at /console/ from assets embedded in the binary. The assets are
// built from src/ by build.mjs (`make console`) and committed under dist/,
// so `go build` works on a clean checkout; `make check-console` rebuilds them
// and fails if the committed copy differs.
//
// The console is static: it holds no secret and calls the REST API on the
// same origin with the operator's API key (Authorization: Bearer), kept in
// the tab's sessionStorage. Everything is served with a strict
// Content-Security-Policy: only this origin's script, style and API, no
// inline code, no frames, no forms posting elsewhere.
package console

import (
	"embed"
	"io/fs"
	"net/http"
	"path"
	"strings"
)

//go:embed dist
var dist embed.FS

// CSP is the Content-Security-Policy of every /console/ response. data:
// images are the SVG icons uPlot's legend may use; nothing else leaves
// 'self'.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Prefix is where the console is served.
const Prefix = "/console/"

// Handler serves the console under Prefix: index.html for the folder itself,
// the embedded files by name, 404 for anything else. Every answer carries
// the CSP and nosniff; index.html is never cached (it names the current
// assets, and a browser must not keep an old console around), the assets
// are revalidated.
func Handler() http.Handler {
	files, err := fs.Sub(dist, "dist")
	if err != nil {
		panic(err) // the embed pattern guarantees the folder
	}
	server := http.FileServerFS(files)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", CSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		name := strings.TrimPrefix(r.URL.Path, Prefix)
		if r.URL.Path == strings.TrimSuffix(Prefix, "/") {
			http.Redirect(w, r, Prefix, http.StatusMovedPermanently)
			return
		}
		if !strings.HasPrefix(r.URL.Path, Prefix) || strings.Contains(name, "/") {
			http.NotFound(w, r)
			return
		}
		if name == "" || name == "index.html" {
			h.Set("Cache-Control", "no-store")
			index, err := fs.ReadFile(files, "index.html")
			if err != nil {
				http.Error(w, "console not built", http.StatusInternalServerError)
				return
			}
			h.Set("Content-Type", "text/html; charset=utf-8")
			_, _ = w.Write(index)
			return
		}
		if _, err := fs.Stat(files, name); err != nil || path.Clean(name) != name {
			http.NotFound(w, r)
			return
		}
		h.Set("Cache-Control", "no-cache")
		r2 := r.Clone(r.Context())
		r2.URL.Path = "/" + name
		server.ServeHTTP(w, r2)
	})
}
