package manager

import (
	"errors"

	"corral.io/corral/agent/apiserver"
	"corral.io/corral/agent/unit"
)

// TEMPORARY until agent/unit's install.go lands.
var errPending = errors.New("enable/disable not wired yet")

func pendingOp(l *unit.Loader, dir string, names []string) ([]unit.Change, error) {
	return nil, errPending
}

func isEnabledPending(l *unit.Loader, name string) (string, error) { return "", errPending }

func unitFileError(err error) error { return errors.Join(apiserver.ErrUnsupported, err) }
