# Copyright: see LICENSE
#
# 039_config_trust.pl: configuration files name programs pgbk runs
# (restic_binary), so pgbk and pgbk-watcher refuse a pgbk.conf or a watcher
# configuration file that group or others can write, before running
# anything, and say how to fix it.  (Files owned by another user cannot be
# made here, as postgres; common/test/test_config.c covers ownership.)
use strict;
use warnings;

use File::Path qw(make_path);
use IPC::Run;
use PostgreSQL::Test::Utils;
use Test::More;
use lib 't/lib';
use PgbkTest;
use PgbkWatcher;

my $base = PostgreSQL::Test::Utils::tempdir('trust');
my $repo = PgbkTest::local_repo('trust');
my $ran = "$base/ran";

# a "restic" that only records that it ran (and fails)
my $fake = PgbkTest::write_file("$base/fake-restic",
	"#!/bin/sh\necho \"\$@\" >> '$ran'\nexit 1\n", 0755);
my $pw = PgbkTest::write_file("$base/restic.pw", "secret\n", 0600);
PgbkTest::append_file($repo->{conf},
	"restic_binary = '$fake'\nrestic_password_file = '$pw'\n");
my $conf = $repo->{conf};

sub restore_files
{
	my (@target) = @_;
	unlink $ran;
	my $dir = "$base/files-" . int(rand(1e9));
	my ($rc, $out, $err) = PgbkTest::pgbk('restore', '--config', $conf, @target,
		'--files-to', $dir);
	return ($rc, $err, -e $ran, -e $dir);
}

is((stat $conf)[2] & 07777, 0600, 'the test harness writes pgbk.conf with mode 0600');

# the control: a private pgbk.conf gets as far as running restic_binary
my ($rc, $err, $ran_it) = restore_files('--files-snapshot', 'abcdef12');
ok($ran_it, 'mode 0600: pgbk restore --files-to runs restic_binary') or diag $err;
isnt($rc, 3, '... and is not refused as a configuration error');

for my $case ([ 0666, 'group and others' ], [ 0602, 'others' ], [ 0620, 'its group' ])
{
	my ($mode, $who) = @$case;
	my $m = sprintf('%04o', $mode);
	chmod $mode, $conf or die "chmod: $!";
	for my $target ([ '--files-snapshot', 'abcdef12' ], [ '--target-time', '2026-01-01 00:00:00+00' ])
	{
		my ($rc, $err, $ran_it, $made) = restore_files(@$target);
		is($rc, 3, "pgbk.conf mode $m, restore --files-to $target->[0]: exit 3 (configuration)");
		like($err,
			qr{configuration file "\Q$conf\E" is writable by \Q$who\E \(mode $m\), so it cannot be trusted .*; run chmod go-w \Q$conf\E$}m,
			"... the message names the file, what is wrong and how to fix it");
		ok(!$ran_it, '... restic_binary did not run');
		ok(!$made, '... the --files-to directory was not created');
	}
}
chmod 0600, $conf;

# pgbk-watcher: its own configuration file, and the pgbk.conf it names
my $root = "$base/root";
make_path($root);
my $wconf = "$base/watcher.conf";
PgbkWatcher::write_file($wconf,
	"roots = '$root'\npgbk_config = '$conf'\nspool_dir = '$base/spool'\n"
	  . "conninfo = 'host=$base/nosocket dbname=postgres'\n", 0600);

sub watcher_once
{
	unlink $ran;
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start([ PgbkWatcher::bin(), '-c', $wconf, '--once' ],
		'>', \$out, '2>', \$err,
		IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
	$h->finish;
	return ($h->result(0), $err, -e $ran);
}

my $wran;
($rc, $err, $wran) = watcher_once();
ok($wran, 'watcher, private files: --once runs restic_binary') or diag $err;
isnt($rc, 3, '... and is not refused as a configuration error');

chmod 0646, $wconf;
($rc, $err, $wran) = watcher_once();
is($rc, 3, 'watcher configuration file writable by others: exit 3');
like($err, qr{configuration file "\Q$wconf\E" is writable by others \(mode 0646\).*run chmod go-w \Q$wconf\E},
	'... naming the file and the fix');
ok(!$wran, '... restic_binary did not run');

chmod 0660, $wconf;
($rc, $err, $wran) = watcher_once();
is($rc, 3, 'watcher configuration file writable by its group: exit 3');
ok(!$wran, '... restic_binary did not run');

chmod 0600, $wconf;
chmod 0666, $conf;
($rc, $err, $wran) = watcher_once();
is($rc, 3, 'the pgbk.conf the watcher names is world-writable: exit 3');
like($err, qr{configuration file "\Q$conf\E" is writable by group and others},
	'... naming pgbk.conf');
ok(!$wran, '... restic_binary did not run');

done_testing();
