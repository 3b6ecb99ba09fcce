//go:build lockmgr_sharedonly

package pluginhost

import (
	"github.com/lockmgr/lockmgr/core/backend"
)

// startPrivate, in a build with the lockmgr_sharedonly tag, which links
// no go-plugin, hands the start to the program's fallback
// (SetPrivateFallback), which may replace the process with a build that
// can; else, or if the fallback fails, the start fails.
func (h *Host) startPrivate(name, _, _ string) (*Plugin, error) {
	if f := privateFallback.Load(); f != nil {
		if err := (*f)(name); err != nil {
			return nil, backend.Errorf("start", "", name, err)
		}
	}
	return nil, backend.Errorf("start", "", name, ErrNoPrivatePlugins)
}

// StartsPrivatePlugins says whether this build of the host starts private
// plugins itself: false, as it was built with lockmgr_sharedonly.
const StartsPrivatePlugins = false
