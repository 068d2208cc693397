# pgbk: PostgreSQL extension (pg_ext/ + common/), the pgbk CLI (cli/) and the
# pgbk-watcher daemon (watcher/).  Built with PGXS against PostgreSQL 15.
#
#   make            build everything
#   make install    install the extension (PostgreSQL dirs) and the programs
#                   (BINDIR, default /usr/local/bin)
#   make demo       fresh Debian 12, as root: deps, build, install, end-to-end demo
#   make test       fresh Debian 12, as root: deps, build, install, every test
#   make format     reformat C sources (clang-format, .clang-format)

PG_CONFIG ?= pg_config
BINDIR ?= /usr/local/bin

MODULE_big = pgbk
# common/ is divided into rooms (ARCHITECTURE.md): base, repo, format, wal,
# plan, config, files.  files/ (restic) is linked into the programs only,
# never into pgbk.so: the backend does not run restic.
COMMON_SRCS := $(sort $(wildcard common/*/*.c))
COMMON_SRCS := $(filter-out common/test/%,$(COMMON_SRCS))
BACKEND_COMMON_SRCS := $(filter-out common/files/%,$(COMMON_SRCS))
COMMON_HDRS := $(filter-out common/test/%,$(wildcard common/*/*.h))
PGEXT_SRCS := $(sort $(wildcard pg_ext/*.c))
CLI_SRCS := $(sort $(wildcard cli/*.c))
WATCHER_SRCS := $(sort $(wildcard watcher/*.c))
UNIT_SRCS := $(sort $(wildcard common/test/test_*.c))
UNIT_BINS := $(UNIT_SRCS:.c=)

OBJS = $(PGEXT_SRCS:.c=.o) $(BACKEND_COMMON_SRCS:.c=.o)

# The current version's install script is assembled from pg_ext/sql/*.sql
# fragments (one per concern).  Released scripts are frozen and committed
# (pg_ext/pgbk--1.0.sql and pgbk--1.1.sql as shipped, with the shipped
# upgrade script pgbk--1.0--1.1.sql); every change since the last release
# goes into the fragments and, the same change, into an upgrade script
# assembled from pg_ext/sql/upgrade/<version>/*.sql.  t/006 checks that an
# upgraded catalog equals a fresh install, object by object.
EXTVERSION = 1.2
PREVVERSION = 1.1
MODULEDIR = extension
DATA = pg_ext/pgbk.control pg_ext/pgbk--1.0.sql pg_ext/pgbk--1.1.sql pg_ext/pgbk--1.0--1.1.sql
DATA_built = pg_ext/pgbk--$(EXTVERSION).sql pg_ext/pgbk--$(PREVVERSION)--$(EXTVERSION).sql
SQL_FRAGMENTS := $(sort $(wildcard pg_ext/sql/*.sql))
SQL_UPGRADE_FRAGMENTS := $(sort $(wildcard pg_ext/sql/upgrade/$(EXTVERSION)/*.sql))

XML2_CFLAGS := $(shell pkg-config --cflags libxml-2.0 2>/dev/null || echo -I/usr/include/libxml2)
PG_CPPFLAGS = -I$(srcdir)/common $(XML2_CFLAGS)
COMMON_LIBS = -lcurl -lcrypto -lsodium -lzstd -lxxhash -lxml2 -lcjson
SHLIB_LINK = $(COMMON_LIBS)

EXTRA_CLEAN = common/*/*.bc cli/*.o watcher/*.o cli/pgbk watcher/pgbk-watcher $(UNIT_BINS) \
	tmp_check results regression.diffs regression.out log

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

srcdir ?= .

# ---------------------------------------------------------------------------
# Programs.  They link the same common/ objects as the extension (built -fPIC
# by PGXS, which is fine for executables too).
COMMON_OBJS = $(COMMON_SRCS:.c=.o)
FRONTEND_CPPFLAGS = -I$(srcdir)/common -I$(includedir) $(XML2_CFLAGS)
LIBPQ = -L$(libdir) -lpq

PROGRAMS = cli/pgbk $(if $(WATCHER_SRCS),watcher/pgbk-watcher)

all: $(PROGRAMS)

cli/%.o: cli/%.c $(wildcard cli/*.h) $(COMMON_HDRS)
	$(CC) $(CFLAGS) $(FRONTEND_CPPFLAGS) -c -o $@ $<

watcher/%.o: watcher/%.c $(wildcard watcher/*.h) $(COMMON_HDRS)
	$(CC) $(CFLAGS) $(FRONTEND_CPPFLAGS) -c -o $@ $<

cli/pgbk: $(CLI_SRCS:.c=.o) $(COMMON_OBJS)
	$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) $(COMMON_LIBS) $(LIBPQ) -lpthread

watcher/pgbk-watcher: $(WATCHER_SRCS:.c=.o) $(COMMON_OBJS)
	$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) $(COMMON_LIBS) $(LIBPQ)

$(COMMON_OBJS): $(COMMON_HDRS)
$(PGEXT_SRCS:.c=.o): $(COMMON_HDRS) $(wildcard pg_ext/*.h)

pg_ext/pgbk--$(EXTVERSION).sql: $(SQL_FRAGMENTS)
	cat $^ > $@

pg_ext/pgbk--$(PREVVERSION)--$(EXTVERSION).sql: $(SQL_UPGRADE_FRAGMENTS)
	cat $^ > $@

install: install-programs

install-programs: $(PROGRAMS)
	install -d '$(DESTDIR)$(BINDIR)'
	install -m 755 $(PROGRAMS) '$(DESTDIR)$(BINDIR)/'

# ---------------------------------------------------------------------------
# Tests.  `make test` is the entry point (scripts/test.sh): as root it
# installs packages, builds, installs and then runs `make check-all` as the
# unprivileged postgres user in a copy of the tree.

common/test/test_%: common/test/test_%.c common/test/unit.h $(COMMON_OBJS)
	$(CC) $(CFLAGS) $(FRONTEND_CPPFLAGS) -o $@ $< $(COMMON_OBJS) $(LDFLAGS) $(COMMON_LIBS) -lcmocka

# Integration-test helpers (run by TAP tests against real servers).
common/test/itest_%: common/test/itest_%.c $(COMMON_OBJS)
	$(CC) $(CFLAGS) $(FRONTEND_CPPFLAGS) -o $@ $< $(COMMON_OBJS) $(LDFLAGS) $(COMMON_LIBS)

# test_watcher compiles the watcher's own sources in
common/test/test_watcher: $(wildcard watcher/*.c watcher/*.h)

ITEST_BINS := $(patsubst %.c,%,$(sort $(wildcard common/test/itest_*.c)))
all: $(ITEST_BINS)

REGRESS_TESTS = $(patsubst sql/%.sql,%,$(sort $(wildcard sql/*.sql)))

.PHONY: test demo bench check-all check-unit check-regress check-tap format format-check install-programs

test:
	scripts/test.sh

demo:
	scripts/demo.sh

check-all: check-unit check-regress check-tap

check-unit: $(UNIT_BINS) pgbk.so
	scripts/check-includes.sh
	scripts/check-symbols.sh pgbk.so
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; PGBK_VECTORS=$(CURDIR)/t/vectors $$t; done

check-regress:
	rm -rf tmp_check/regress tmp_check/regress-out && mkdir -p tmp_check
	$(pgxsdir)/src/test/regress/pg_regress --bindir='$(bindir)' --inputdir=. \
		--outputdir=tmp_check/regress-out --temp-instance=tmp_check/regress \
		--temp-config=t/regress.conf --dbname=contrib_regression $(REGRESS_TESTS)

PROVE_TESTS ?= t/*.pl
check-tap: $(ITEST_BINS)
	rm -rf tmp_check/tap && mkdir -p tmp_check/tap
	TESTDIR='$(CURDIR)/tmp_check/tap' PATH="$(bindir):$(BINDIR):$$PATH" \
		PG_REGRESS='$(pgxsdir)/src/test/regress/pg_regress' \
		PGBK_SRCDIR='$(CURDIR)' PGBK_ITEST_WALSCAN='$(CURDIR)/common/test/itest_walscan' \
		$(PROVE) -I $(pgxsdir)/src/test/perl -I t/lib $(PROVE_FLAGS) $(PROVE_TESTS)

C_SOURCES = $(wildcard common/*/*.[ch] pg_ext/*.[ch] cli/*.[ch] watcher/*.[ch])
format:
	clang-format -i $(C_SOURCES)

format-check:
	@clang-format --dry-run --Werror $(C_SOURCES) && echo "format: ok"
