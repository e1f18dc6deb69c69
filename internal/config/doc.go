// Package config reads Holdfast's config files: it finds them, parses them
// strictly, applies defaults, checks every value, and hands the rest of the
// program plain values. It is the only package that reads config files and
// the environment. Nothing else is read later: a Config is complete.
//
// # Files and names
//
// A config is one backup set, as in Amanda. It lives in
// <config-dir>/<name>.yaml, where the config directory is the --config-dir
// flag, else $HOLDFAST_CONFIG_DIR, else /etc/holdfast (see Dir).
//
// A config name is 1 to 64 of A-Z a-z 0-9 . _ -, starting with a letter or
// digit. Names are checked before any file is opened, so a name can never
// reach outside the config directory, and the file is opened through an
// os.Root, so a symbolic link cannot either.
//
// Every error names the file, line and column, the key, what is wrong and
// how to fix it, on one line:
//
//	/etc/holdfast/daily.yaml:7:18: disks[1].compression: "lz5" is not a compression; use zstd or none
//
// Unknown keys are errors (with a suggestion when one is close), and so are
// keys set twice, YAML aliases and merge keys (use defaults: instead),
// values of the wrong type and a second YAML document.
//
// # Reference
//
// Keys are lower case. A key with no value (key: or key: ~) counts as
// absent. Words such as zstd or CRC32C are matched without regard to case.
//
//	# Where backups are stored. Required. Either an absolute directory...
//	repository: /var/lib/holdfast/repo
//	# ...or an S3 bucket and an optional key prefix, with an s3: block:
//	#   repository: s3://bucket/prefix
//
//	# The object store, only with an s3:// repository.
//	s3:
//	  endpoint: s3.amazonaws.com    # host or host:port, no scheme (default s3.amazonaws.com)
//	  region: us-east-1             # default us-east-1
//	  access_key: AKIA...           # required: the access key ID
//	  # The secret key, in exactly one of three ways:
//	  secret_key_file: /etc/holdfast/s3.secret  # absolute path; the file holds the key on
//	                                            # one line and must not be readable by all (chmod 600)
//	  # secret_key_env: HOLDFAST_S3_SECRET      # an environment variable of holdfast's
//	  # secret_key: ...                         # the key itself; the config file must
//	                                            # then not be readable by all (chmod o-r)
//	  tls: true                     # HTTPS (default true); false for plain HTTP
//
//	# Settings every disk starts from; any disk may override them.
//	# Takes the disk settings below except host, disk and postgres.
//	defaults:
//	  compression: zstd
//
//	# The PostgreSQL clusters to back up. Required, at least one.
//	disks:
//	  - host: db1          # required: the client host, as Amanda clients name themselves;
//	                       # letters, digits, '-' and '.'; case does not matter
//	    disk: pg-main      # required: the disk name clients use; any UTF-8 text, spaces and '/'
//	                       # included, but no control characters and no white space at either
//	                       # end; unique per host
//	    # Required: how to reach PostgreSQL, as a libpq connection string or URI.
//	    # Prefer a password file (passfile=... or PGPASSFILE) or PGPASSWORD; a password
//	    # written here is allowed but then the config file must not be readable by all.
//	    # Holdfast never prints it.
//	    postgres: "host=/run/postgresql port=5432 user=backup"
//	    compression: zstd  # how archives are stored: zstd (default) or none
//	    checksums: CRC32C  # manifest checksums: CRC32C (default), SHA224, SHA256,
//	                       # SHA384, SHA512 or NONE
//	    level: auto        # auto (default): incremental when a usable full backup exists
//	                       # and the server can (17+), else full; or full, or incremental
//	    wal: stream        # stream (default): WAL over a second connection during the
//	                       # backup; fetch: the server appends it at the end
//	    checkpoint: fast   # fast (default) or spread
//	    max_rate: 0        # kB/s; 0 (default) for no limit, else 32 to 1048576
//	    verify_checksums: true  # the server checks data-page checksums (default true)
//	    # Compression done by the server before sending: empty (default) or none for
//	    # none; gzip, lz4 or zstd, optionally with a level (zstd:5) or PostgreSQL's
//	    # options (zstd:level=5,workers=4,long). Levels: gzip 1-9, lz4 1-12, zstd up to 22.
//	    server_compression: ""
//
//	# Amanda clients allowed to call the service. Optional; without it no peer is served.
//	hosts:
//	  - name: db1          # required: a host that has disks in this config
//	    # IP addresses and CIDR prefixes the client connects from. Without them the
//	    # peer must match the forward-confirmed reverse DNS of name. An address may
//	    # belong to one host only; prefixes must have no bits set after their length.
//	    addresses: ["127.0.0.1", "10.0.0.0/24"]
//	    users: ["amandabackup"]    # client users allowed (Amanda's .amandahosts); empty: nobody.
//	                               # The client claims its user name; addresses prove more.
//	    tls_names: ["db1.example"] # client-certificate names of this host (TLS transport);
//	                               # each name belongs to one host
//
//	# Settings of `holdfast serve` for this config. Optional.
//	server:
//	  require_reserved_port: false # refuse peers whose source port is 1024 or above (default false)
//
// # Disk names in the repository
//
// Disk names reach repository paths and object keys only through DiskKey,
// which keeps A-Z a-z 0-9 . _ - and writes every other byte as %XX, so "pg
// main" is stored as pg%20main and "/var/lib/pgsql" as %2Fvar%2Flib%2Fpgsql.
// ValidDisk refuses names whose key would exceed 255 bytes.
//
// # Secrets
//
// Secrets are held in Secret and ConnInfo, whose every printed, logged or
// encoded form hides them ("[redacted]"). ConnInfo hides password,
// sslpassword and oauth_client_secret, the password of a URI, and the values
// of keywords it does not know.
package config
