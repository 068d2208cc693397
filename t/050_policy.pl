# The four axes as policy: every scope in one plan (with registered daily
# Hyper-V snapshots), health flags (database granularity broken by an S3
# outage, files changed without a snapshot, an external scope silent for 25
# hours), and verification (bk_verify from the catalog, pgbk verify from the
# repository alone) naming a deleted and a corrupted object.  Expiry by
# depth is t/051_expire.pl (here only: an incomplete backup found over S3).
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use lib 't/lib';
use PgbkRestore;
use PgbkS3;
use PgbkTest;

my $s3 = PgbkS3->start();
my $base = PostgreSQL::Test::Utils::tempdir('policy');
my $key = PgbkTest::keygen("$base/pgbk.key");
my $conf = $s3->write_pgbk_conf("$base/pgbk.conf", prefix => 'policy', key_file => $key,
	s3_max_retries => 1, s3_connect_timeout => '2s');
my $node = PgbkTest::new_node('policy', $conf, extra => "archive_timeout = 5\n");
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION pgbk');

sub sq { return $node->safe_psql('postgres', $_[0]); }

###########################################################################
# 1. bk_restore_point lists all five scopes, each with the right backup.
for my $d (3, 2, 1)
{
	sq("SELECT bk_register_external_backup('virtual_machine', date_trunc('day', now()) - interval '$d days' + interval '2 hours', 'hyperv:pimcore-vm\@day-$d', 'nightly Hyper-V snapshot')");
}
my $plan = sq(
	"SELECT string_agg(scope || '=' || coalesce(backup_id, '-'), ',' ORDER BY scope) FROM bk_restore_point(date_trunc('day', now()) - interval '2 days' + interval '14 hours 7 minutes')"
);
like($plan, qr/^database=.*,files=.*,physical_server=-,s3_files=-,virtual_machine=hyperv:pimcore-vm\@day-2$/,
	'the plan lists all five scopes; the VM restores from the snapshot taken that morning');
is( sq(
		"SELECT restore_type || '|' || date_trunc('minute', distance) FROM bk_restore_point(date_trunc('day', now()) - interval '2 days' + interval '14 hours 7 minutes') WHERE scope = 'virtual_machine'"
	),
	'in place|12:07:00',
	'... in place, 12 h 7 min before the target');

###########################################################################
# 2. Health
# an external scope with nothing registered for 25 h at daily granularity
sq("SELECT bk_register_external_backup('physical_server', now() - interval '25 hours', 'veeam:job-1')");
like(sq("SELECT status || '|' || detail FROM bk_scope_health WHERE scope = 'physical_server'"),
	qr/^violation\|.*no backup registered within 1 day/, 'an external scope silent for 25 h is flagged');
sq("SELECT bk_register_external_backup('physical_server', now() - interval '1 hour', 'veeam:job-2')");
like(sq("SELECT detail FROM bk_scope_health WHERE scope = 'physical_server'"),
	qr/^(?!.*no backup registered)/, '... and no longer once a fresh one is registered');

# files changed without a snapshot for longer than the files granularity
sq("SELECT bk_record_file_changes('pimcore-app', now() - interval '5 minutes')");
like(sq("SELECT status || '|' || detail FROM bk_scope_health WHERE scope = 'files'"),
	qr/^violation\|.*granularity .* worse than the target 00:01:00/,
	'files changed 5 minutes ago without a snapshot: the files scope is flagged');

# the database: S3 down for longer than its granularity
sq("SELECT bk_set_policy('database', granularity => '10 seconds')");
sq('CREATE TABLE t (i int)');
sq("INSERT INTO t VALUES (1); SELECT pg_switch_wal()");
ok(PgbkTest::wait_archived($node), 'archiving works');
$s3->stop_gateway;
sq("INSERT INTO t VALUES (2); SELECT pg_switch_wal()");
$node->poll_query_until('postgres',
	"SELECT status = 'violation' AND detail LIKE '%granularity%worse than the target 00:00:10%' FROM bk_scope_health WHERE scope = 'database'"
) or die 'database granularity violation not flagged';
pass('S3 down longer than the database granularity: the database scope is flagged');
$s3->start_gateway;
ok(PgbkTest::wait_archived($node), 'archiving drains after the outage');
sq("SELECT bk_set_policy('database', granularity => '1 minute')");

###########################################################################
# 3. Verification: a deleted WAL object and a flipped byte, by name
my $w = PgbkRestore::workload($node, backups => [0]);
sq('SELECT bk_catalog_sync()');
is(sq('SELECT count(*) FROM bk_verify()'), '0', 'a healthy repository verifies clean')
  or diag(sq(q{SELECT string_agg(kind || ' ' || object || ': ' || problem, E'\n') FROM bk_verify()}));
my ($rc, $out, $err) = PgbkTest::pgbk('verify', '--config', $conf);
is($rc, 0, 'pgbk verify (repository alone): a healthy repository verifies clean')
  or diag("$out\n$err");
like($err, qr/verify: \d+ objects read .*, 0 problems/, '... and says how much it read');
($rc, $out, $err) = PgbkTest::pgbk('verify', '--config', $conf, '--sample', '1.5');
is($rc, 2, 'pgbk verify --sample 1.5 is a usage error');
like($err, qr/--sample must be a number in \(0, 1\], not "1.5"/, '... naming the option');

# the repository descriptor (pgbk.repo) is read and authenticated too:
# truncated, replaced by another (authentic) object, or missing
PgbkTest::repo_tool($conf, 'copy', 'pgbk.repo', 'saved-pgbk.repo');
PgbkTest::repo_tool($conf, 'truncate', 'pgbk.repo', 1 << 20);
($rc, $out, $err) = PgbkTest::pgbk('verify', '--config', $conf);
is($rc, 6, 'pgbk verify: a descriptor truncated to 0 bytes is a problem (exit 6)')
  or diag("$out\n$err");
like($out, qr/^repository pgbk\.repo: unreadable: /m, '... naming pgbk.repo');
like(sq("SELECT kind || ' ' || object || ': ' || problem FROM bk_verify() WHERE kind = 'repository'"),
	qr/^repository pgbk\.repo: unreadable: /, '... and so does bk_verify()');
my ($some_wal) = grep { m{^wal/[0-9A-F]{16}/[0-9A-F]{24}$} } map { (split / /)[0] }
  split /\n/, PgbkTest::repo_tool($conf, 'list', 'wal/');
PgbkTest::repo_tool($conf, 'copy', $some_wal, 'pgbk.repo');
($rc, $out, $err) = PgbkTest::pgbk('verify', '--config', $conf);
is($rc, 6, 'a WAL object copied over the descriptor is a problem') or diag("$out\n$err");
like($out, qr/^repository pgbk\.repo: (the object is not a repository descriptor \(it says kind=wal\)|unreadable: object declares \d+ bytes of content, more than the 1048576 bytes allowed for an object of its kind)/m,
	'... saying it is no descriptor');
like(sq("SELECT kind || ' ' || object || ': ' || problem FROM bk_verify() WHERE kind = 'repository'"),
	qr/^repository pgbk\.repo: (the object is not a repository descriptor \(it says kind=wal\)|unreadable: object declares \d+ bytes of content, more than the 1048576 bytes allowed)/,
	'... and so does bk_verify()');
PgbkTest::repo_tool($conf, 'delete', 'pgbk.repo');
($rc, $out, $err) = PgbkTest::pgbk('verify', '--config', $conf);
is($rc, 6, 'a missing descriptor is a problem') or diag("$out\n$err");
like($out, qr/^repository pgbk\.repo: missing: /m, '... saying it is missing');
PgbkTest::repo_tool($conf, 'copy', 'saved-pgbk.repo', 'pgbk.repo');
PgbkTest::repo_tool($conf, 'delete', 'saved-pgbk.repo');
($rc, $out, $err) = PgbkTest::pgbk('verify', '--config', $conf);
is($rc, 0, '... and with it back, the repository verifies clean') or diag("$out\n$err");
my @names = split /\n/, sq("SELECT name FROM pgbk.wal WHERE kind = 'segment' ORDER BY name DESC LIMIT 4");
my ($deleted, $flipped) = @names[1, 2];
# damage the repository through the S3 API
PgbkTest::repo_tool($conf, 'delete', 'wal/' . substr($deleted, 0, 16) . "/$deleted");
PgbkTest::repo_tool($conf, 'flip', 'wal/' . substr($flipped, 0, 16) . "/$flipped", 5000);
my $problems = sq("SELECT kind || ' ' || object || ': ' || problem FROM bk_verify() ORDER BY 1");
like($problems, qr/^wal \Q$deleted\E: missing/m, 'verify names the deleted WAL object');
like($problems, qr/^wal \Q$flipped\E: unreadable: .*(modified|authentication)/m,
	'verify names the corrupted WAL object');
like($problems, qr/wal gap/, '... and the gap it leaves for the backups');

# the same damage found from the repository alone, by name, with exit code 6
($rc, $out, $err) = PgbkTest::pgbk('verify', '--config', $conf);
is($rc, 6, 'pgbk verify exits 6 (integrity) on a damaged repository') or diag("$out\n$err");
like($out, qr/^wal gap \Q$deleted\E: WAL segment \Q$deleted\E is missing: backup \S+ cannot be restored past it$/m,
	'pgbk verify names the deleted WAL object and the backup it cuts off');
like($out, qr/^wal \Q$flipped\E: unreadable: .*(modified|authentication)/m,
	'pgbk verify names the corrupted WAL object');
unlike($out, qr/^wal (?!gap)(?!\Q$flipped\E:)/m, '... and nothing else');
($rc, $out, $err) = PgbkTest::pgbk('verify', '--config', $conf, '--sample', '0.01');
like($out, qr/^wal gap \Q$deleted\E:/m, 'with --sample the continuity check still finds the gap');

###########################################################################
# 4. Expiry over S3 finds the data of a backup that never completed (a data
# object under an old backup id with no manifest): a dry run names it,
# and the complete backup is kept
my ($bkey) = map { (split / /)[0] } grep { m{^backup/\S+/data/} }
  split /\n/, PgbkTest::repo_tool($conf, 'list', 'backup/');
my $orphan = '20250101T000000Z';
PgbkTest::repo_tool($conf, 'copy', $bkey, "backup/$orphan/data/base/1/1259");
is(sq("SELECT string_agg(object || ' ' || action, ',' ORDER BY object) FROM bk_expire(true) WHERE kind = 'backup'"),
	"$orphan would delete,$w->{backups}[0] keep",
	'expiry (dry run, S3): the incomplete backup would go, the complete one stays');
PgbkTest::repo_tool($conf, 'delete', "backup/$orphan/data/base/1/1259");
$s3->stop;

done_testing();
