package buildinfo

import (
	"runtime/debug"
	"strings"
	"testing"
)

func TestFromBuildInfo(t *testing.T) {
	vcs := func(rev, tm, modified string) []debug.BuildSetting {
		return []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: rev}, {Key: "vcs.time", Value: tm}, {Key: "vcs.modified", Value: modified}}
	}
	const rev = "0123456789abcdef0123456789abcdef01234567"
	for _, tc := range []struct {
		name      string
		bi        *debug.BuildInfo
		ok        bool
		short     string
		wantInStr []string
	}{
		{"no build info (go test, stripped)", nil, false, "devel", []string{"posfleet devel (no VCS information"}},
		{"go install module@version", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.4.0"}}, true, "v1.4.0", []string{"posfleet v1.4.0 (", "go1.26.8"}},
		{"checkout, clean", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: vcs(rev, "2026-12-01T10:00:00Z", "false")}, true,
			"devel-0123456789ab", []string{"revision " + rev, "committed 2026-12-01T10:00:00Z"}},
		{"checkout, dirty", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: vcs(rev, "2026-12-01T10:00:00Z", "true")}, true,
			"devel-0123456789ab-dirty", []string{"with uncommitted changes"}},
		{"go run: no version", &debug.BuildInfo{Main: debug.Module{Version: ""}}, true, "devel", []string{"no VCS information"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			i := fromBuildInfo(tc.bi, tc.ok)
			if got := i.Short(); got != tc.short {
				t.Errorf("Short() = %q, want %q", got, tc.short)
			}
			for _, w := range tc.wantInStr {
				if !strings.Contains(i.String(), w) {
					t.Errorf("String() = %q, want it to contain %q", i.String(), w)
				}
			}
			if i.GoVersion == "" || !strings.Contains(i.Platform, "/") {
				t.Errorf("GoVersion %q, Platform %q: want both set", i.GoVersion, i.Platform)
			}
		})
	}
}

func TestLinkTimeVersionWins(t *testing.T) {
	defer func(v, b string) { version, buildTime = v, b }(version, buildTime)
	version, buildTime = "v9.9.9", "2026-12-03T10:00:00Z"
	i := fromBuildInfo(&debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, true)
	if i.Short() != "v9.9.9" || !strings.Contains(i.String(), "built 2026-12-03T10:00:00Z") {
		t.Errorf("got %q, want the link-time version and build time", i.String())
	}
}
