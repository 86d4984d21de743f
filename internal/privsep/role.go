package privsep

// Role is a part of the daemon: one of the processes of the split daemon,
// or all of them in one process.
type Role uint8

// Roles.
const (
	RoleAll    Role = iota // one process does everything, the roles as goroutines
	RoleServer             // the NTP responders on inherited sockets
	RoleEngine             // the client, the control socket
	RoleKeeper             // the parent: the clock and the supervision of the others
	roleEnd
)

var roleNames = [...]string{"all", "server", "engine", "keeper"}

func (r Role) String() string {
	if r < roleEnd {
		return roleNames[r]
	}
	return "unknown"
}
