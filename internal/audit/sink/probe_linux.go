package sink

import (
	"crypto/tls"
	"errors"
	"syscall"
	"time"
)

// pendingWait bounds the TLS read that consumes records the server sent
// (session tickets, a close_notify alert). Those bytes have already arrived,
// so the read needs no network round trip.
const pendingWait = 20 * time.Millisecond

// peerClosed reports whether the server has closed or reset conn. It peeks
// at the socket without blocking; a syslog server sends no application data,
// so end of stream, an error or a TLS alert all mean the connection is gone.
// Writing to such a connection would succeed locally and lose the batch.
func peerClosed(conn *tls.Conn) bool {
	sc, ok := conn.NetConn().(syscall.Conn)
	if !ok {
		return false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return true
	}
	var (
		n    int
		rerr error
		buf  [1]byte
	)
	if err := raw.Read(func(fd uintptr) bool {
		n, _, rerr = syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		return true
	}); err != nil {
		return true
	}
	switch {
	case errors.Is(rerr, syscall.EAGAIN), errors.Is(rerr, syscall.EINTR):
		return false
	case rerr != nil, n == 0:
		return true
	}
	// Records are waiting: let crypto/tls process them.
	if err := conn.SetReadDeadline(time.Now().Add(pendingWait)); err != nil {
		return true
	}
	_, err = conn.Read(buf[:])
	if derr := conn.SetReadDeadline(time.Time{}); derr != nil {
		return true
	}
	var ne interface{ Timeout() bool }
	return err != nil && !(errors.As(err, &ne) && ne.Timeout())
}
