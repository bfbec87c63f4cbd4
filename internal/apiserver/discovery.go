package apiserver

import (
	"fmt"
	"mime"
	"net/http"
	goruntime "runtime"
	"strings"

	apidiscoveryv2 "k8s.io/api/apidiscovery/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/version"

	"github.com/peapod-dev/peapod/internal/registry"
)

// aggregatedDiscovery is the media type of aggregated discovery (v2).
const aggregatedDiscovery = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"

func (s *Server) serveHealth(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	fmt.Fprint(w, "ok")
}

func (s *Server) serveVersion(w http.ResponseWriter, r *http.Request) {
	major, minor := "1", ""
	if parts := strings.SplitN(strings.TrimPrefix(s.version, "v"), ".", 3); len(parts) >= 2 {
		major, minor = parts[0], parts[1]
	}
	writeJSON(w, http.StatusOK, "application/json", version.Info{
		Major: major, Minor: minor, GitVersion: s.version,
		GoVersion: goruntime.Version(), Compiler: goruntime.Compiler,
		Platform: goruntime.GOOS + "/" + goruntime.GOARCH,
	})
}

// wantsAggregated: the client asked for aggregated discovery v2.
func wantsAggregated(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err == nil && mt == "application/json" && params["g"] == "apidiscovery.k8s.io" && params["v"] == "v2" && params["as"] == "APIGroupDiscoveryList" {
			return true
		}
	}
	return false
}

func (s *Server) serveAPIVersions(w http.ResponseWriter, r *http.Request) {
	if wantsAggregated(r) {
		list := apidiscoveryv2.APIGroupDiscoveryList{
			TypeMeta: metav1.TypeMeta{Kind: "APIGroupDiscoveryList", APIVersion: "apidiscovery.k8s.io/v2"},
			Items: []apidiscoveryv2.APIGroupDiscovery{{
				Versions: []apidiscoveryv2.APIVersionDiscovery{{
					Version:   "v1",
					Resources: s.discoveryResources(),
					Freshness: apidiscoveryv2.DiscoveryFreshnessCurrent,
				}},
			}},
		}
		writeJSON(w, http.StatusOK, aggregatedDiscovery, list)
		return
	}
	writeJSON(w, http.StatusOK, "application/json", metav1.APIVersions{
		TypeMeta: metav1.TypeMeta{Kind: "APIVersions"},
		Versions: []string{"v1"},
		ServerAddressByClientCIDRs: []metav1.ServerAddressByClientCIDR{{
			ClientCIDR: "0.0.0.0/0", ServerAddress: s.clientAddr(),
		}},
	})
}

func (s *Server) serveAPIGroups(w http.ResponseWriter, r *http.Request) {
	if wantsAggregated(r) {
		list := apidiscoveryv2.APIGroupDiscoveryList{
			TypeMeta: metav1.TypeMeta{Kind: "APIGroupDiscoveryList", APIVersion: "apidiscovery.k8s.io/v2"},
			Items:    []apidiscoveryv2.APIGroupDiscovery{},
		}
		for i := range apiGroups {
			g := &apiGroups[i]
			list.Items = append(list.Items, apidiscoveryv2.APIGroupDiscovery{
				ObjectMeta: metav1.ObjectMeta{Name: g.gv.Group},
				Versions: []apidiscoveryv2.APIVersionDiscovery{{
					Version:   g.gv.Version,
					Resources: s.groupDiscoveryResources(g),
					Freshness: apidiscoveryv2.DiscoveryFreshnessCurrent,
				}},
			})
		}
		writeJSON(w, http.StatusOK, aggregatedDiscovery, list)
		return
	}
	list := metav1.APIGroupList{
		TypeMeta: metav1.TypeMeta{Kind: "APIGroupList", APIVersion: "v1"},
		Groups:   []metav1.APIGroup{},
	}
	for i := range apiGroups {
		list.Groups = append(list.Groups, s.apiGroup(&apiGroups[i]))
	}
	writeJSON(w, http.StatusOK, "application/json", list)
}

// apiGroup is the group's APIGroup, with its one version preferred.
func (s *Server) apiGroup(g *apiGroup) metav1.APIGroup {
	v := metav1.GroupVersionForDiscovery{GroupVersion: g.gv.String(), Version: g.gv.Version}
	return metav1.APIGroup{
		Name: g.gv.Group, Versions: []metav1.GroupVersionForDiscovery{v}, PreferredVersion: v,
		ServerAddressByClientCIDRs: []metav1.ServerAddressByClientCIDR{{
			ClientCIDR: "0.0.0.0/0", ServerAddress: s.clientAddr(),
		}},
	}
}

// serveAPIGroup answers /apis/GROUP.
func (s *Server) serveAPIGroup(w http.ResponseWriter, r *http.Request, g *apiGroup) {
	ag := s.apiGroup(g)
	ag.TypeMeta = metav1.TypeMeta{Kind: "APIGroup", APIVersion: "v1"}
	writeJSON(w, http.StatusOK, "application/json", ag)
}

// serveGroupResourceList answers /apis/GROUP/VERSION.
func (s *Server) serveGroupResourceList(w http.ResponseWriter, r *http.Request, g *apiGroup) {
	list := metav1.APIResourceList{
		TypeMeta:     metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"},
		GroupVersion: g.gv.String(),
		APIResources: []metav1.APIResource{},
	}
	for _, name := range g.resources {
		if res, ok := s.reg.Resource(name); ok {
			list.APIResources = append(list.APIResources, metav1.APIResource{
				Name: res.Name, SingularName: res.SingularName, Namespaced: res.Namespaced,
				Kind: res.Kind, Verbs: res.Verbs,
			})
		}
	}
	writeJSON(w, http.StatusOK, "application/json", list)
}

// groupDiscoveryResources are the group's resources for aggregated discovery.
func (s *Server) groupDiscoveryResources(g *apiGroup) []apidiscoveryv2.APIResourceDiscovery {
	out := []apidiscoveryv2.APIResourceDiscovery{}
	for _, name := range g.resources {
		res, ok := s.reg.Resource(name)
		if !ok {
			continue
		}
		scope := apidiscoveryv2.ScopeCluster
		if res.Namespaced {
			scope = apidiscoveryv2.ScopeNamespace
		}
		out = append(out, apidiscoveryv2.APIResourceDiscovery{
			Resource:         res.Name,
			ResponseKind:     &metav1.GroupVersionKind{Group: g.gv.Group, Version: g.gv.Version, Kind: res.Kind},
			Scope:            scope,
			SingularResource: res.SingularName,
			Verbs:            res.Verbs,
		})
	}
	return out
}

func (s *Server) serveResourceList(w http.ResponseWriter, r *http.Request) {
	list := metav1.APIResourceList{
		TypeMeta:     metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"},
		GroupVersion: "v1",
	}
	for _, res := range s.reg.Resources() {
		if res.Group != "" {
			continue
		}
		list.APIResources = append(list.APIResources, metav1.APIResource{
			Name: res.Name, SingularName: res.SingularName, Namespaced: res.Namespaced,
			Kind: res.Kind, Verbs: res.Verbs, ShortNames: res.ShortNames,
		})
		for _, sub := range res.Subresources {
			list.APIResources = append(list.APIResources, metav1.APIResource{
				Name: res.Name + "/" + sub, Namespaced: res.Namespaced,
				Group: subresourceGroup(sub), Version: subresourceVersion(sub),
				Kind: subresourceKind(res, sub), Verbs: subresourceVerbs(sub),
			})
		}
	}
	writeJSON(w, http.StatusOK, "application/json", list)
}

func (s *Server) discoveryResources() []apidiscoveryv2.APIResourceDiscovery {
	var out []apidiscoveryv2.APIResourceDiscovery
	for _, res := range s.reg.Resources() {
		if res.Group != "" {
			continue
		}
		scope := apidiscoveryv2.ScopeCluster
		if res.Namespaced {
			scope = apidiscoveryv2.ScopeNamespace
		}
		d := apidiscoveryv2.APIResourceDiscovery{
			Resource:         res.Name,
			ResponseKind:     &metav1.GroupVersionKind{Version: "v1", Kind: res.Kind},
			Scope:            scope,
			SingularResource: res.SingularName,
			Verbs:            res.Verbs,
			ShortNames:       res.ShortNames,
		}
		for _, sub := range res.Subresources {
			d.Subresources = append(d.Subresources, apidiscoveryv2.APISubresourceDiscovery{
				Subresource:  sub,
				ResponseKind: &metav1.GroupVersionKind{Group: subresourceGroup(sub), Version: "v1", Kind: subresourceKind(res, sub)},
				Verbs:        subresourceVerbs(sub),
			})
		}
		out = append(out, d)
	}
	return out
}

// subresourceGroup and subresourceVersion name a subresource whose kind is
// outside core/v1 (pods/eviction takes a policy/v1 Eviction), as kubectl
// drain looks for it in discovery.
func subresourceGroup(sub string) string {
	if sub == "eviction" {
		return "policy"
	}
	return ""
}

func subresourceVersion(sub string) string {
	if sub == "eviction" {
		return "v1"
	}
	return ""
}

func subresourceKind(res *registry.Resource, sub string) string {
	switch sub {
	case "eviction":
		return "Eviction"
	case "binding":
		return "Binding"
	case "log":
		return "Pod"
	case "exec", "attach", "portforward":
		return streamOptionsKind[sub]
	}
	return res.Kind
}

func subresourceVerbs(sub string) []string {
	switch sub {
	case "log":
		return []string{"get"}
	case "exec", "attach", "portforward":
		return []string{"create", "get"}
	case "eviction", "binding":
		return []string{"create"}
	}
	return []string{"get", "patch", "update"}
}
