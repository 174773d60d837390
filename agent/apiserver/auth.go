package apiserver

import (
	"context"
	"fmt"
	"net"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	corralv1 "corral.io/corral/api/corral/v1"
)

// Access policy. The socket is mode 0666 so that any local user can run
// `corralctl status` or `list-units`, like systemctl against systemd's D-Bus
// API. What a caller may do is decided per call from the kernel-verified
// SO_PEERCRED of the connection: uid 0 may call everything, other uids only
// the read methods below. A 0600 socket would make every read need sudo, and
// a group-owned socket would need a group that does not exist on every host.
var readMethods = map[string]bool{
	corralv1.UnitService_ListUnits_FullMethodName: true,
	corralv1.UnitService_GetUnit_FullMethodName:   true,
	corralv1.UnitService_Show_FullMethodName:      true,
	corralv1.UnitService_Cat_FullMethodName:       true,
	corralv1.UnitService_IsEnabled_FullMethodName: true,
	corralv1.UnitService_ListJobs_FullMethodName:  true,
	corralv1.UnitService_Logs_FullMethodName:      true,
	corralv1.SystemService_Version_FullMethodName: true,
	corralv1.SystemService_Health_FullMethodName:  true,
}

// PeerCred is the AuthInfo of a connection on the API socket: the peer's
// credentials as the kernel recorded them at connect time.
type PeerCred struct {
	credentials.CommonAuthInfo
	PID, UID, GID int
}

// AuthType implements credentials.AuthInfo.
func (PeerCred) AuthType() string { return "peercred" }

// peerCreds is a TransportCredentials that does no handshake on the wire; it
// only reads SO_PEERCRED from the accepted unix connection so that
// interceptors can authorize each call. Clients use insecure credentials.
type peerCreds struct{}

func (peerCreds) ClientHandshake(_ context.Context, _ string, c net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return c, nil, fmt.Errorf("peercred: client side not supported")
}

func (peerCreds) ServerHandshake(c net.Conn) (net.Conn, credentials.AuthInfo, error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return nil, nil, fmt.Errorf("peercred: connection from %s is not a unix socket", c.RemoteAddr())
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return nil, nil, fmt.Errorf("peercred: %w", err)
	}
	var cred *unix.Ucred
	var serr error
	if err := raw.Control(func(fd uintptr) {
		cred, serr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return nil, nil, fmt.Errorf("peercred: %w", err)
	}
	if serr != nil {
		return nil, nil, fmt.Errorf("peercred: SO_PEERCRED: %w", serr)
	}
	return c, PeerCred{
		CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.PrivacyAndIntegrity},
		PID:            int(cred.Pid), UID: int(cred.Uid), GID: int(cred.Gid),
	}, nil
}

func (peerCreds) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "peercred"}
}
func (p peerCreds) Clone() credentials.TransportCredentials { return p }
func (peerCreds) OverrideServerName(string) error           { return nil }

// callerUID returns the uid of the peer, or -1 when unknown (then the caller
// is treated as unprivileged).
func callerUID(ctx context.Context) int {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return -1
	}
	if pc, ok := p.AuthInfo.(PeerCred); ok {
		return pc.UID
	}
	return -1
}

// authorize returns PermissionDenied naming the method when uid may not call
// it.
func authorize(uid int, method string) error {
	if uid == 0 || readMethods[method] {
		return nil
	}
	return status.Errorf(codes.PermissionDenied, "access denied: %s requires root (caller uid %d)", method, uid)
}
