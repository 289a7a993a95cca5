package deploy_test

import (
	"encoding/json"
	"testing"
)

// TestGrafanaDashboard checks the dashboard's structure: it imports, every
// panel queries the data source chosen in its variable, and panels do not
// overlap. That each metric it queries exists is checked against a running
// consentd in server/app/dashboard_test.go.
func TestGrafanaDashboard(t *testing.T) {
	type datasource struct{ Type, UID string }
	var d struct {
		Title, UID    string
		SchemaVersion int
		Templating    struct {
			List []struct{ Name, Type, Query any }
		}
		Panels []struct {
			ID         int
			Type       string
			Title      string
			Datasource datasource
			GridPos    struct{ X, Y, W, H int }
			Targets    []struct {
				RefID      string
				Expr       string
				Datasource datasource
			}
		}
	}
	if err := json.Unmarshal(readFile(t, "grafana/consentd-dashboard.json"), &d); err != nil {
		t.Fatalf("grafana/consentd-dashboard.json: %v", err)
	}
	if d.Title == "" || d.UID == "" || d.SchemaVersion == 0 || len(d.Panels) == 0 {
		t.Fatalf("dashboard: want a title, a uid, a schemaVersion and panels")
	}
	hasDatasourceVar := false
	for _, v := range d.Templating.List {
		hasDatasourceVar = hasDatasourceVar || (v.Name == "datasource" && v.Type == "datasource" && v.Query == "prometheus")
	}
	if !hasDatasourceVar {
		t.Error("dashboard: want a Prometheus data source variable named datasource, so it works with any data source")
	}
	ids := map[int]bool{}
	var cells [][24]string // row -> column -> panel title
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel %q: id %d is used twice", p.Title, p.ID)
		}
		ids[p.ID] = true
		if p.Datasource != (datasource{"prometheus", "${datasource}"}) {
			t.Errorf("panel %q: datasource %+v; want the ${datasource} variable", p.Title, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		refs := map[string]bool{}
		for _, q := range p.Targets {
			if q.Expr == "" || q.RefID == "" || refs[q.RefID] || q.Datasource != p.Datasource {
				t.Errorf("panel %q: query %+v: want an expr, a unique refId and the panel's datasource", p.Title, q)
			}
			refs[q.RefID] = true
		}
		g := p.GridPos
		if g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 || g.Y < 0 {
			t.Errorf("panel %q: gridPos %+v is off the 24-column grid", p.Title, g)
			continue
		}
		for len(cells) < g.Y+g.H {
			cells = append(cells, [24]string{})
		}
	fill:
		for y := g.Y; y < g.Y+g.H; y++ {
			for x := g.X; x < g.X+g.W; x++ {
				if other := cells[y][x]; other != "" {
					t.Errorf("panel %q overlaps %q", p.Title, other)
					break fill
				}
				cells[y][x] = p.Title
			}
		}
	}
}
