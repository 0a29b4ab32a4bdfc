#!/usr/bin/env bash
# Installs (from Debian packages, if missing) and starts PostgreSQL, MariaDB and Redis on loopback for the
# DatabaseCache and RedisCache tests, creates the database `oxicache_test` and the user `oxicache`
# (password `oxicache`) on each SQL server, and prints `export` lines for OXICACHE_PG_URL,
# OXICACHE_MYSQL_URL and OXICACHE_REDIS_URL:
#
#     eval "$(bash scripts/db-servers.sh)"
#
# Safe to rerun: a server that is already up is left alone, and a warm run takes about a second.
# Progress goes to stderr, only the export lines to stdout. Needs root (or passwordless sudo) and works
# without systemd: PostgreSQL is started with pg_ctlcluster, MariaDB by running mariadbd directly.
# Daemons are started with their output in log files, never on this script's stdout or stderr, so a
# caller reading our output through a pipe is not kept waiting by them.
set -euo pipefail

DB=oxicache_test
DB_USER=oxicache
DB_PASSWORD=oxicache
TIMEOUT=${OXICACHE_DB_TIMEOUT:-60}  # seconds to wait for each server to accept connections
LOG_DIR=${OXICACHE_DB_LOG_DIR:-${TMPDIR:-/tmp}/oxicache-db-servers}

say() { echo "db-servers: $*" >&2; }
die() { echo "db-servers: error: $*" >&2; exit 1; }

if [ "$(id -u)" -eq 0 ]; then
    as_root() { "$@"; }
    as_user() { local user=$1; shift; runuser -u "$user" -- "$@"; }
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    as_root() { sudo -n "$@"; }
    as_user() { local user=$1; shift; sudo -n -u "$user" -- "$@"; }
else
    die "must run as root or with passwordless sudo (it installs packages and starts servers)"
fi
cd /  # psql run as postgres warns when it cannot read the current directory
as_root mkdir -p "$LOG_DIR"

# --- packages -------------------------------------------------------------------------------------
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
missing=()
# iproute2: `ip netns` for the multi-host tests (tests/multihost), which make hosts with network namespaces.
for pkg in postgresql mariadb-server redis-server iproute2; do
    installed "$pkg" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    log="$LOG_DIR/apt.log"
    say "installing ${missing[*]} from Debian packages (log: $log)"
    # Output to a log file, not our stderr: the packages' maintainer scripts may start daemons that
    # would otherwise hold our caller's pipe open.
    if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get update </dev/null >"$log" 2>&1 ||
        ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
            postgresql mariadb-server redis-server </dev/null >>"$log" 2>&1; then
        tail -n 30 "$log" >&2
        die "apt-get failed installing ${missing[*]} (full log: $log)"
    fi
fi

# detached COMMAND...: runs COMMAND (a daemon starter) with every inherited fd above 2 closed, so the
# daemon keeps no pipe of whoever ran us; callers redirect 0-2 to /dev/null and a log file.
detached() {
    (
        for fd in /proc/self/fd/*; do
            fd=${fd##*/}
            if [ "$fd" -gt 2 ]; then eval "exec $fd>&-" 2>/dev/null || true; fi
        done
        "$@"
    )
}

# wait_for NAME COMMAND...: runs COMMAND every half second until it succeeds or TIMEOUT runs out.
wait_for() {
    local name=$1; shift
    local deadline=$((SECONDS + TIMEOUT))
    until "$@" >/dev/null 2>&1; do
        [ $SECONDS -lt $deadline ] || return 1
        sleep 0.5
    done
    say "$name accepts connections"
}

# --- PostgreSQL -----------------------------------------------------------------------------------
# The newest installed major version's cluster `main` (created if the package left none).
pg_version=$(ls /usr/lib/postgresql 2>/dev/null | sort -V | tail -n 1)
[ -n "$pg_version" ] || die "no PostgreSQL server under /usr/lib/postgresql"
if ! pg_lsclusters -h 2>/dev/null | awk -v v="$pg_version" '$1 == v && $2 == "main" {found=1} END {exit !found}'; then
    say "creating PostgreSQL $pg_version cluster main"
    as_root pg_createcluster "$pg_version" main </dev/null >"$LOG_DIR/pg_createcluster.log" 2>&1 ||
        { cat "$LOG_DIR/pg_createcluster.log" >&2; die "pg_createcluster $pg_version main failed"; }
fi
pg_port=$(pg_lsclusters -h | awk -v v="$pg_version" '$1 == v && $2 == "main" {print $3}')
pg_logfile=$(pg_lsclusters -h | awk -v v="$pg_version" '$1 == v && $2 == "main" {print $7}')
if as_root pg_ctlcluster "$pg_version" main status >/dev/null 2>&1; then
    say "PostgreSQL $pg_version already running on port $pg_port"
else
    say "starting PostgreSQL $pg_version on 127.0.0.1:$pg_port"
    log="$LOG_DIR/pg_ctlcluster.log"
    detached as_root pg_ctlcluster "$pg_version" main start </dev/null >"$log" 2>&1 ||
        { cat "$log" >&2; tail -n 20 "$pg_logfile" >&2 || true; die "pg_ctlcluster $pg_version main start failed (server log: $pg_logfile)"; }
fi
wait_for "PostgreSQL" pg_isready -q -h 127.0.0.1 -p "$pg_port" -t 1 ||
    { tail -n 20 "$pg_logfile" >&2 || true; die "PostgreSQL did not accept connections on 127.0.0.1:$pg_port within ${TIMEOUT}s (server log: $pg_logfile)"; }

# As the postgres superuser over the Unix socket (peer authentication). ALTER ROLE resets the password
# on every run, so a role left with another password is repaired.
as_user postgres psql -X -q -v ON_ERROR_STOP=1 -p "$pg_port" -d postgres >/dev/null <<SQL ||
SELECT 'CREATE ROLE $DB_USER LOGIN' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$DB_USER') \gexec
ALTER ROLE $DB_USER LOGIN PASSWORD '$DB_PASSWORD';
SELECT 'CREATE DATABASE $DB OWNER $DB_USER' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$DB') \gexec
ALTER DATABASE $DB OWNER TO $DB_USER;
SQL
    die "could not create the PostgreSQL role $DB_USER and database $DB"
PGPASSWORD=$DB_PASSWORD PGCONNECT_TIMEOUT=5 psql -X -q -h 127.0.0.1 -p "$pg_port" -U "$DB_USER" -d "$DB" -tAc 'SELECT 1' >/dev/null ||
    die "PostgreSQL is up, but $DB_USER cannot log in to $DB over 127.0.0.1:$pg_port (check pg_hba.conf)"
say "PostgreSQL: database $DB, user $DB_USER ready"

# --- MariaDB --------------------------------------------------------------------------------------
mariadb_cli=$(command -v mariadb || command -v mysql) || die "no mariadb client found"
mariadbd_bin=$(command -v mariadbd || command -v /usr/sbin/mariadbd || command -v /usr/sbin/mysqld) ||
    die "no mariadbd found"
# root@localhost authenticates by unix_socket on Debian, so root (or sudo) needs no password.
maria_root() { as_root "$mariadb_cli" --protocol=socket -uroot --connect-timeout=2 "$@"; }
datadir=$("$mariadbd_bin" --print-defaults 2>/dev/null | tr ' ' '\n' | sed -n 's/^--datadir=//p' | tail -n 1)
datadir=${datadir:-/var/lib/mysql}
if maria_root -e 'SELECT 1' >/dev/null 2>&1; then
    say "MariaDB already running"
else
    if [ ! -d "$datadir/mysql" ]; then
        say "initializing the MariaDB data directory $datadir"
        as_root mariadb-install-db --user=mysql --datadir="$datadir" </dev/null >"$LOG_DIR/mariadb-install-db.log" 2>&1 ||
            { cat "$LOG_DIR/mariadb-install-db.log" >&2; die "mariadb-install-db failed"; }
    fi
    # /run is a tmpfs: the socket and pid directory may be gone.
    as_root install -d -o mysql -g mysql -m 755 /run/mysqld
    log="$LOG_DIR/mariadbd.log"
    say "starting MariaDB on 127.0.0.1:3306 (log: $log)"
    # Run directly (no systemd here). `setsid -f` forks it into its own session and returns at once;
    # its fds go to the log, so nothing of ours (a caller's pipe) stays open in it.
    detached as_root setsid -f "$mariadbd_bin" --user=mysql --bind-address=127.0.0.1 </dev/null >>"$log" 2>&1
fi
wait_for "MariaDB" maria_root -e 'SELECT 1' ||
    { tail -n 20 "$LOG_DIR/mariadbd.log" >&2 2>/dev/null || true
      die "MariaDB did not accept connections within ${TIMEOUT}s (logs: $LOG_DIR/mariadbd.log, /var/log/mysql/)"; }
mysql_port=$(maria_root -N -B -e 'SELECT @@port')

maria_root >/dev/null <<SQL || die "could not create the MariaDB user $DB_USER and database $DB"
CREATE DATABASE IF NOT EXISTS $DB;
CREATE USER IF NOT EXISTS '$DB_USER'@'localhost' IDENTIFIED BY '$DB_PASSWORD';
CREATE USER IF NOT EXISTS '$DB_USER'@'127.0.0.1' IDENTIFIED BY '$DB_PASSWORD';
ALTER USER '$DB_USER'@'localhost' IDENTIFIED BY '$DB_PASSWORD';
ALTER USER '$DB_USER'@'127.0.0.1' IDENTIFIED BY '$DB_PASSWORD';
GRANT ALL PRIVILEGES ON $DB.* TO '$DB_USER'@'localhost';
GRANT ALL PRIVILEGES ON $DB.* TO '$DB_USER'@'127.0.0.1';
SQL
MYSQL_PWD=$DB_PASSWORD "$mariadb_cli" --protocol=tcp -h 127.0.0.1 -P "$mysql_port" -u "$DB_USER" --connect-timeout=5 \
    -D "$DB" -N -B -e 'SELECT 1' >/dev/null ||
    die "MariaDB is up, but $DB_USER cannot log in to $DB over 127.0.0.1:$mysql_port"
say "MariaDB: database $DB, user $DB_USER ready"

# Redis: no persistence (a test server), loopback only, its own port so a system Redis is left alone.
redis_port=${OXICACHE_REDIS_PORT:-6390}
if redis-cli -p "$redis_port" ping >/dev/null 2>&1; then
    say "Redis already running on port $redis_port"
else
    log="$LOG_DIR/redis.log"
    say "starting Redis on 127.0.0.1:$redis_port (log: $log)"
    detached as_root redis-server --bind 127.0.0.1 --port "$redis_port" --save '' --appendonly no \
        --daemonize yes --logfile "$log" --dir "$LOG_DIR" </dev/null >>"$log" 2>&1 ||
        { tail -n 20 "$log" >&2 || true; die "redis-server failed to start (log: $log)"; }
fi
wait_for "Redis" redis-cli -p "$redis_port" ping ||
    { tail -n 20 "$LOG_DIR/redis.log" >&2 || true; die "Redis did not answer on 127.0.0.1:$redis_port within ${TIMEOUT}s"; }

echo "export OXICACHE_PG_URL=postgresql+psycopg://$DB_USER:$DB_PASSWORD@127.0.0.1:$pg_port/$DB"
echo "export OXICACHE_MYSQL_URL=mysql+pymysql://$DB_USER:$DB_PASSWORD@127.0.0.1:$mysql_port/$DB"
echo "export OXICACHE_REDIS_URL=redis://127.0.0.1:$redis_port/0"
