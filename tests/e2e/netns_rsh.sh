#!/bin/sh
# Open MPI's remote launcher for hosts simulated by network namespaces
# (tests/e2e/test_multihost.py), used as `mpirun --mca plm_rsh_agent THIS_SCRIPT`.
#
# mpirun runs the agent the way it runs ssh: `AGENT HOST WORD...`, the words forming one
# shell command (it starts Open MPI's daemon, orted, on HOST). Here HOST is the name of a
# network namespace: the command runs inside it, as ssh would on that host.
#   ip netns exec HOST   the host's network: its own veth, address and routes;
#   unshare --uts        its own hostname (ip netns exec keeps the caller's), set to HOST,
#                        which is how Open MPI tells nodes apart (and so uses TCP, not
#                        shared memory, between them, though they share /dev/shm);
#   sh -c "$*"           the words joined by spaces and run by a shell, like sshd does.
# Everything else (file system, environment, user) is shared with the caller.
host=$1
shift
exec ip netns exec "$host" unshare --uts -- sh -c 'hostname "$0" && exec sh -c "$*"' "$host" "$@"
