# /etc/profile.d/wakame.sh (installed by ami/install.sh): `wakameadm status` on a node asks the
# node's own agent. The agent's API listens on the instance's private address, not on 127.0.0.1,
# so point the CLI there (the first address `hostname -I` gives; the agent binds the same one).
# Commands that change the cluster also need the admin token (readable by wakame only):
#   sudo --preserve-env=WAKAME_NODE -u wakame wakameadm --token-file /etc/wakame/secrets/admin.token ...
if [ -z "${WAKAME_NODE:-}" ]; then
  _wakame_ip=$(hostname -I 2>/dev/null | cut -d' ' -f1)
  if [ -n "$_wakame_ip" ]; then
    WAKAME_NODE="http://$_wakame_ip:7600"
    export WAKAME_NODE
  fi
  unset _wakame_ip
fi
