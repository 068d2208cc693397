# Copyright: see LICENSE
#
# 010_s3_client.pl: the S3 client (common/repo/s3.c, sigv4.c, repo_s3.c) against a
# real RadosGW that checks every signature, and against tiny fake servers for
# what a healthy server never does (503s, cut transfers, stalls).
#
# The C side is common/test/itest_s3 (build: make common/test/itest_s3); it
# takes a pgbk.conf and a scenario and prints "ok - ..." lines or
# "<op> status=<status> msg=<message>" lines that are checked here.
use strict;
use warnings;

use Cwd;
use IO::Socket::INET;
use IPC::Run;
use POSIX ();
use Socket ();
use Time::HiRes qw(time);
use PostgreSQL::Test::Utils;
use Test::More;
use PgbkS3;
use PgbkTest;

my $srcdir = $ENV{PGBK_SRCDIR} // getcwd();
my $itest = $ENV{PGBK_ITEST_S3} // "$srcdir/common/test/itest_s3";
BAIL_OUT("$itest not built (make common/test/itest_s3)") unless -x $itest;

my $work = PostgreSQL::Test::Utils::tempdir('s3client');
my $s3 = PgbkS3->start();
note "RadosGW at " . $s3->endpoint . " (http " . $s3->endpoint_http . ")";

# everything the C program printed, to look for secrets at the end
my $all_output = '';
my @secrets = ($s3->secret_key);

# Run itest_s3 CONF SCENARIO ARGS; returns (exit ok, stdout).
sub run_itest
{
	my ($conf, @args) = @_;
	my %env = %{ ref $args[0] eq 'HASH' ? shift @args : {} };
	my ($out, $err) = ('', '');
	local %ENV = (%ENV, %env);
	my $ok = IPC::Run::run([ $itest, $conf, @args ], '>', \$out, '2>', \$err);
	$all_output .= $out . $err;
	note "itest_s3 @args:\n$out$err" if $ENV{PGBK_TEST_VERBOSE};
	return ($ok, $out . $err);
}

# A functional scenario: every "ok -"/"not ok -" line becomes a test.
sub functional
{
	my ($name, $conf, @args) = @_;
	my ($ok, $out) = run_itest($conf, @args);
	my $n = 0;
	for my $line (split /\n/, $out)
	{
		next unless $line =~ /^(not )?ok - (.*)$/;
		ok(!defined $1, "$name: $2");
		$n++;
	}
	ok($ok && $n > 0, "$name: itest_s3 @args succeeded") or diag($out);
	return $out;
}

# A probing scenario: { op => [status, message] }.
sub probe
{
	my ($conf, @args) = @_;
	my ($ok, $out) = run_itest($conf, @args);
	my %r;
	for my $line (split /\n/, $out)
	{
		$r{$1} = [ $2, $3 ] if $line =~ /^(\w+) status=([a-z ]+) msg=(.*)$/;
		$r{elapsed_ms} = $1 if $line =~ /^elapsed_ms=(\d+)/;
	}
	$r{_out} = $out;
	return \%r;
}

# every op of an "ops" probe failed with the same status
sub all_ops_are
{
	my ($r, $status, $name) = @_;
	my @bad = grep { !defined $r->{$_} || $r->{$_}[0] ne $status }
	  qw(check put get list delete);
	ok(!@bad, "$name: check/put/get/list/delete all fail with \"$status\"")
	  or diag($r->{_out});
	return;
}

my $n_conf = 0;
my $conf_key;
sub conf
{
	my (%o) = @_;
	$n_conf++;
	# every repository needs a key file, also with encryption off
	$conf_key //= PgbkTest::keygen("$work/conf.key");
	return $s3->write_pgbk_conf("$work/c$n_conf.conf", encryption => 'off', key_file => $conf_key,
		%o);
}

# a port nothing listens on
sub free_port
{
	my $sock = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Listen => 1)
	  or die "bind: $!";
	my $port = $sock->sockport;
	close $sock;
	return $port;
}

########################################################################
# The real server: path style over TLS with the generated CA.

my $conf = conf(
	prefix => 'repo/one',
	s3_part_size => '5MB',
	s3_multipart_threshold => '8MB');
functional('path style', $conf, 'basic');
functional('pagination', $conf, 'list', 1100);
functional('multipart', $conf, 'multipart', 40 * 1024 * 1024);
functional('client api', $conf, 'client');

# repository prefix: keys land under it, listing strips it
{
	my $r = probe($conf, 'put-key', 'prefixed/k', 'v1');
	is($r->{put}[0], 'ok', 'put under the repository prefix');
	my $bare = conf(prefix => '');
	$r = probe($bare, 'get-key', 'repo/one/prefixed/k');
	like($r->{_out}, qr/^value=v1$/m, 'object key is s3_prefix/key');
}

# virtual-host style: bucket.s3.localhost, connected to 127.0.0.1 without DNS
my $vconf = conf(
	prefix => 'vhost',
	s3_endpoint => $s3->virtual_host_endpoint,
	s3_uri_style => 'host',
	s3_connect_host => '127.0.0.1');
functional('virtual host style', $vconf, 'basic');

# plain HTTP endpoint
{
	my $r = probe(conf(s3_endpoint => $s3->endpoint_http, s3_ca_file => undef), 'ops');
	all_ops_are($r, 'ok', 'plain http');
}

########################################################################
# Errors: each class distinct, with a message that says what to fix.

{
	my $r = probe(conf(s3_ca_file => undef), 'ops');
	all_ops_are($r, 'tls', 'tls without s3_ca_file');
	like($r->{check}[1], qr/certificate.*s3_ca_file/, 'tls error points at s3_ca_file');

	$r = probe(conf(s3_ca_file => undef, s3_verify_tls => 'off'), 'ops');
	all_ops_are($r, 'ok', 's3_verify_tls = off');
}

{
	my $wrong = 'WrongSecretKey0123456789wrongSECRET0123';
	push @secrets, $wrong;
	my $r = probe(conf(secret_key => $wrong), 'ops');
	all_ops_are($r, 'authentication', 'wrong secret');
	is($r->{head}[0], 'authentication', 'wrong secret: head too');
	like($r->{put}[1], qr/SignatureDoesNotMatch.*check s3_credentials_file/,
		'wrong secret: message names the cause and the setting');
	like($r->{put}[1], qr/\Q${\ $s3->endpoint}\E/, 'wrong secret: message names the endpoint');

	$r = probe(conf(access_key => 'NOSUCHACCESSKEY00000'), 'ops');
	all_ops_are($r, 'authentication', 'unknown access key id');
	like($r->{check}[1], qr/InvalidAccessKeyId/, 'unknown key id: message says so');
}

{
	my $r = probe(conf(bucket => 'no-such-bucket'), 'ops');
	all_ops_are($r, 'no such bucket', 'missing bucket');
	like($r->{check}[1], qr/bucket "no-such-bucket" does not exist at s3 endpoint \Q${\ $s3->endpoint}\E/,
		'missing bucket: message names bucket and endpoint');
}

{
	my $port = free_port();
	my $r = probe(
		conf(s3_endpoint => "https://127.0.0.1:$port", s3_max_retries => 1),
		'ops');
	all_ops_are($r, 'connection', 'refused port');
	like($r->{put}[1], qr/could not connect to s3 endpoint .*gave up after 2 attempts/,
		'refused port: retried, then gave up');
	like($r->{_out}, qr/^log: .*retrying \(attempt 2 of 2\)/m, 'retries are logged');
}

{
	my $r = probe(
		conf(s3_endpoint => 'https://s3.invalid', s3_max_retries => 0),
		'ops');
	all_ops_are($r, 'name resolution', 'unresolvable host');
	like($r->{check}[1], qr/could not resolve the host of s3 endpoint https:\/\/s3\.invalid/,
		'unresolvable host: message names the endpoint');
}

{
	# host style needs a name, not an address
	# (config.c or the client refuses it, whichever looks first)
	my $r = probe(conf(s3_uri_style => 'host'), 'ops');
	my $res = $r->{config} // $r->{open} // [ '', '' ];
	is($res->[0], 'configuration', 'host style with an IP endpoint is a configuration error');
	like($res->[1], qr/s3_uri_style = path/, 'and the message says what to set');
}

########################################################################
# Outage of the gateway: data survives, operations fail with "connection"
# after the retries, and an operation that is retrying when the gateway
# comes back succeeds.

{
	my $oconf = conf(prefix => 'outage', s3_max_retries => 1);
	my $r = probe($oconf, 'put-key', 'before', 'kept');
	is($r->{put}[0], 'ok', 'put before the outage');

	$s3->stop_gateway;
	my $t0 = time();
	$r = probe($oconf, 'get-key', 'before');
	is($r->{get}[0], 'connection', 'gateway down: connection error');
	like($r->{get}[1], qr/gave up after 2 attempts/, 'gateway down: after the retries');

	# a put that starts during the outage and retries until the gateway is back
	my $rconf = conf(prefix => 'outage', s3_max_retries => 12);
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start([ $itest, $rconf, 'put-key', 'during', 'retried' ],
		'>', \$out, '2>', \$err, IPC::Run::timeout(120));
	$h->pump until $out =~ /retrying/;
	ok(1, 'put during the outage is retrying');
	$s3->start_gateway;
	$h->finish;
	$all_output .= $out . $err;
	like($out, qr/^put status=ok/m, 'the retried put succeeded once the gateway was back');

	$r = probe($oconf, 'get-key', 'before');
	like($r->{_out}, qr/^value=kept$/m, 'data written before the outage survived');
	$r = probe($oconf, 'get-key', 'during');
	like($r->{_out}, qr/^value=retried$/m, 'data written through the outage is there');
}

########################################################################
# Fake servers: behaviour a healthy RadosGW does not show on demand.

# Start a fake S3 in a child.  $handler->($req, $n) returns a hashref:
# { raw => bytes to send, close => 1 to close after, stall => 1,
#   trickle => [bytes, count, seconds]: after raw, send bytes count times,
#   one every seconds, then close }.
# The child logs "conn=C req=N METHOD URI name:value..." lines.
sub fake_s3
{
	my ($handler) = @_;
	my $listen = IO::Socket::INET->new(
		LocalAddr => '127.0.0.1',
		LocalPort => 0,
		Listen => 16,
		ReuseAddr => 1) or die "fake s3: $!";
	my $port = $listen->sockport;
	my $log = "$work/fake-$port.log";
	my $pid = fork();
	die "fork: $!" unless defined $pid;
	if ($pid == 0)
	{
		my ($nconn, $nreq) = (0, 0);
		$SIG{PIPE} = 'IGNORE';
		open my $lf, '>', $log or POSIX::_exit(1);
		$lf->autoflush(1);
		while (my $c = $listen->accept)
		{
			$nconn++;
			while (1)
			{
				my $line = <$c>;
				last unless defined $line;
				my ($method, $uri) = $line =~ /^(\S+) (\S+)/;
				my %h;
				while (my $hl = <$c>)
				{
					$hl =~ s/\r?\n$//;
					last if $hl eq '';
					$h{ lc $1 } = $2 if $hl =~ /^([^:]+):\s*(.*)$/;
				}
				my $body = '';
				read($c, $body, $h{'content-length'}) if $h{'content-length'};
				$nreq++;
				print $lf "conn=$nconn req=$nreq $method $uri "
				  . join(' ', map { "$_=$h{$_}" } sort keys %h) . "\n";
				my $a = $handler->(
					{ method => $method, uri => $uri, h => \%h, body => $body }, $nreq);
				if ($a->{stall})
				{
					sleep 300;
					POSIX::_exit(0);
				}
				print $c $a->{raw};
				if (my $tr = $a->{trickle})
				{
					my ($bytes, $count, $every) = @$tr;
					$c->autoflush(1);
					for (1 .. $count)
					{
						Time::HiRes::sleep($every);
						last unless print $c $bytes;
					}
					last;
				}
				last if $a->{close};
			}
			close $c;
		}
		POSIX::_exit(0);
	}
	close $listen;
	return ($port, $pid, $log);
}

sub fake_stop
{
	my ($pid) = @_;
	kill 'KILL', $pid;
	waitpid($pid, 0);
	return;
}

sub fake_log
{
	my ($log) = @_;
	open my $fh, '<', $log or return ();
	my @l = <$fh>;
	close $fh;
	return @l;
}

sub resp
{
	my ($code, $body, %h) = @_;
	$body //= '';
	my $reason = { 200 => 'OK', 204 => 'No Content', 206 => 'Partial Content',
		400 => 'Bad Request', 404 => 'Not Found', 429 => 'Too Many Requests',
		503 => 'Service Unavailable' }->{$code} // 'X';
	my $len = delete $h{_length} // length($body);
	my $r = "HTTP/1.1 $code $reason\r\nContent-Length: $len\r\n";
	$r .= "$_: $h{$_}\r\n" for sort keys %h;
	return { raw => "$r\r\n$body" };
}

sub s3_error
{
	my ($code, $s3code) = @_;
	return resp($code,
		"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>$s3code</Code>"
		  . "<Message>fake $s3code</Message><RequestId>req-$s3code</RequestId></Error>",
		'Content-Type' => 'application/xml');
}

# a well-behaved object store in the child, for the requests a test does not script
my %store;
sub store_answer
{
	my ($req) = @_;
	my ($key) = $req->{uri} =~ m{^/[^/]+/([^?]*)};
	$key //= '';
	if ($req->{method} eq 'PUT')
	{
		$store{$key} = $req->{body};
		return resp(200, '', ETag => '"e' . length($req->{body}) . '"');
	}
	return s3_error(404, 'NoSuchKey') unless exists $store{$key};
	if ($req->{method} eq 'HEAD')
	{
		my $r = resp(200, '', _length => length($store{$key}), ETag => '"x"');
		return $r;
	}
	return resp(200, $store{$key}, ETag => '"x"') if $req->{method} eq 'GET';
	delete $store{$key};
	return resp(204);
}

sub fake_conf
{
	my ($port, %o) = @_;
	return conf(
		bucket => 'fake',
		prefix => '',
		s3_endpoint => "http://127.0.0.1:$port",
		s3_ca_file => undef,
		%o);
}

# 503 SlowDown twice, then success: retried and fine
{
	my ($port, $pid, $log) = fake_s3(
		sub {
			my ($req, $n) = @_;
			return s3_error(503, 'SlowDown') if $n <= 2;
			return store_answer($req);
		});
	my $r = probe(fake_conf($port), 'put-key', 'k', 'v');
	fake_stop($pid);
	is($r->{put}[0], 'ok', '503 SlowDown twice then 200: put succeeds');
	my @l = fake_log($log);
	is(scalar(grep { / PUT / } @l), 3, 'the put was sent three times');
	like($r->{_out}, qr/^log: .*HTTP 503 SlowDown/m, 'the retries are logged with the S3 code');
}

# 503 for ever: PGBK_ERR_SERVER naming the code and the request id
{
	my ($port, $pid, $log) = fake_s3(sub { return s3_error(503, 'SlowDown'); });
	my $r = probe(fake_conf($port, s3_max_retries => 2), 'put-key', 'k', 'v');
	fake_stop($pid);
	is($r->{put}[0], 'server', 'persistent 503: server error');
	like($r->{put}[1], qr/HTTP 503 SlowDown: fake SlowDown \(request id req-SlowDown\).*gave up after 3 attempts/,
		'persistent 503: message names status, code, request id and attempts');
	is(scalar(fake_log($log)), 3, 'persistent 503: 1 + s3_max_retries requests');
}

# 429 is retried too; a 4xx is not
{
	my ($port, $pid, $log) = fake_s3(
		sub {
			my ($req, $n) = @_;
			return s3_error(429, 'TooManyRequests') if $n == 1;
			return s3_error(400, 'InvalidArgument');
		});
	my $r = probe(fake_conf($port), 'put-key', 'k', 'v');
	fake_stop($pid);
	is($r->{put}[0], 'error', '429 then 400: fails with a plain error');
	like($r->{put}[1], qr/refused to put "k" in bucket "fake": HTTP 400 InvalidArgument/,
		'400: message names the S3 code');
	is(scalar(fake_log($log)), 2, '429 was retried, 400 was not');
}

# keep-alive: sequential requests share one connection, one request each
{
	%store = ();
	my ($port, $pid, $log) = fake_s3(sub { return store_answer($_[0]); });
	my $r = probe(fake_conf($port, session_token => 'FAKE-SESSION-TOKEN-SECRET-42'),
		'seq', 5);
	push @secrets, 'FAKE-SESSION-TOKEN-SECRET-42';
	fake_stop($pid);
	my @l = fake_log($log);
	is(scalar(@l), 15, '5 x (put, get, head) = 15 requests, no extra round trips');
	is(scalar(grep { /^conn=1 / } @l), 15, 'all on one connection');
	is(scalar(grep { /expect=/ } @l), 0, 'no Expect: 100-continue');
	is(scalar(grep { m{authorization=AWS4-HMAC-SHA256 Credential=\S+/\d{8}/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token, Signature=[0-9a-f]{64}} } @l),
		15, 'every request is signed, session token included');
	like($l[0], qr/x-amz-content-sha256=[0-9a-f]{64}/, 'PUT carries the payload hash');
	unlike($l[0], qr/x-amz-content-sha256=UNSIGNED/, 'not UNSIGNED-PAYLOAD');
	is(scalar(grep { /^got=payload$/ } split /\n/, $r->{_out}), 5, 'gets return the bodies');
}

# a GET cut short is resumed with Range + If-Match and the sink sees each byte once
{
	my $obj = join('', map { chr(65 + $_ % 26) } 0 .. 999);
	my ($port, $pid, $log) = fake_s3(
		sub {
			my ($req, $n) = @_;
			if ($n == 1)
			{
				my $r = resp(200, substr($obj, 0, 400), _length => 1000, ETag => '"v1"');
				$r->{close} = 1;
				return $r;
			}
			my ($from) = ($req->{h}{range} // '') =~ /^bytes=(\d+)-$/;
			return s3_error(400, 'BadRange') unless defined $from;
			return resp(206, substr($obj, $from), ETag => '"v1"',
				'Content-Range' => "bytes $from-999/1000");
		});
	my $r = probe(fake_conf($port), 'get-hash', 'obj');
	fake_stop($pid);
	my @l = fake_log($log);
	is($r->{get}[0], 'ok', 'cut transfer: get succeeds');
	require Digest::SHA;
	like($r->{_out}, qr/^len=1000 sha256=\Q${\ Digest::SHA::sha256_hex($obj)}\E$/m,
		'cut transfer: the sink got exactly the object');
	like($l[1] // '', qr/if-match="v1" range=bytes=400-/, 'resumed at byte 400, guarded by the ETag');
}

# a server that never answers: timeout, then an interrupt that is honoured
{
	my ($port, $pid, $log) = fake_s3(sub { return { stall => 1 }; });
	my $t0 = time();
	my $r = probe(fake_conf($port, s3_timeout => '1s', s3_max_retries => 0), 'get-key', 'k');
	my $el = time() - $t0;
	fake_stop($pid);
	is($r->{get}[0], 'connection', 'stalled server: connection error (timeout)');
	like($r->{get}[1], qr/too slow|timed out/i, 'stalled server: message says it timed out');
	ok($el < 10, "stalled server: gave up after s3_timeout ($el s)");

	($port, $pid, $log) = fake_s3(sub { return { stall => 1 }; });
	$t0 = time();
	$r = probe(fake_conf($port, s3_timeout => '60s'),
		{ ITEST_INTERRUPT_AFTER_MS => 700 }, 'get-key', 'k');
	$el = time() - $t0;
	fake_stop($pid);
	is($r->{get}[0], 'interrupted', 'interrupt during a stalled transfer');
	ok($el < 10, "interrupt is honoured quickly ($el s)");

	# and during the backoff between retries
	my $port2 = free_port();
	$t0 = time();
	$r = probe(fake_conf($port2, s3_max_retries => 20),
		{ ITEST_INTERRUPT_AFTER_MS => 500 }, 'get-key', 'k');
	$el = time() - $t0;
	is($r->{get}[0], 'interrupted', 'interrupt during retry backoff');
	ok($el < 5, "backoff interrupt is honoured quickly ($el s)");
}

# a server trickling a body (40 kB/s: far above the 1 kB/s low-speed limit,
# far below s3_min_rate): each attempt fails at its deadline,
# s3_connect_timeout + s3_timeout + size / s3_min_rate = 0.1 + 3 + 1 s here,
# and says so (the whole megabyte takes 26 s, so a client without a deadline
# gets it all)
{
	my $size = 1024 * 1024;
	my ($port, $pid, $log) = fake_s3(
		sub {
			my ($req) = @_;
			my ($from) = ($req->{h}{range} // '') =~ /^bytes=(\d+)-$/;
			my $r = defined $from
			  ? resp(206, '', _length => $size - $from, ETag => '"t"',
				'Content-Range' => "bytes $from-" . ($size - 1) . "/$size")
			  : resp(200, '', _length => $size, ETag => '"t"');
			$r->{trickle} = [ 'x' x 4096, 256, 0.1 ];
			return $r;
		});
	my $r = probe(
		fake_conf($port, s3_timeout => '3s', s3_connect_timeout => '100ms',
			s3_min_rate => '1MB', s3_max_retries => 1),
		'get-key', 'slow');
	fake_stop($pid);
	my @l = fake_log($log);
	is($r->{get}[0], 'connection', 'trickling body: the get fails as a timeout');
	like($r->{get}[1],
		qr{^s3 endpoint http://127\.0\.0\.1:$port: request to get "slow" in bucket "fake" exceeded its deadline: not done after \d\.\d s \(s3_connect_timeout 0\.1 s \+ s3_timeout 3\.0 s \+ \d+ bytes at s3_min_rate 1048576 bytes/s\); \d+ bytes moved \(gave up after 2 attempts\)$},
		'trickling body: the message names the server, the deadline and its parts')
	  or diag($r->{_out});
	like($r->{_out}, qr/^log: .*not done after \d\.\d s.*retrying/m,
		'trickling body: the first attempt was retried');
	is(scalar(@l), 2, 'trickling body: 1 + s3_max_retries requests');
	like($l[1] // '', qr/range=bytes=[1-9]\d*-/, 'trickling body: the retry resumed after the bytes received');
}

# listings that would never end: each stops with an error naming the server
# and the bucket, after a bounded number of requests
sub list_answer
{
	my ($token, @keys) = @_;
	return resp(200, '<?xml version="1.0" encoding="UTF-8"?><ListBucketResult>'
		  . '<Name>fake</Name><IsTruncated>true</IsTruncated>'
		  . (defined $token ? "<NextContinuationToken>$token</NextContinuationToken>" : '')
		  . join('', map { "<Contents><Key>$_</Key><Size>1</Size></Contents>" } @keys)
		  . '</ListBucketResult>', 'Content-Type' => 'application/xml');
}

sub list_probe
{
	my ($name, $handler, $requests, $msg) = @_;
	# after 1100 requests the listing ends, so a client that does not notice
	# fails these tests instead of hanging them
	my ($port, $pid, $log) = fake_s3(
		sub {
			my ($req, $n) = @_;
			return resp(200, '<?xml version="1.0"?><ListBucketResult><IsTruncated>false</IsTruncated></ListBucketResult>',
				'Content-Type' => 'application/xml') if $n > 1100;
			return $handler->(@_);
		});
	my $r = probe(fake_conf($port), 'list-all');
	fake_stop($pid);
	my @l = fake_log($log);
	is($r->{list}[0], 'server', "$name: the listing fails") or diag($r->{_out});
	like($r->{list}[1], qr{^s3 endpoint http://127\.0\.0\.1:$port: listing of bucket "fake" $msg},
		"$name: the error names the server, the bucket and what is wrong");
	is(scalar(@l), $requests, "$name: stopped after $requests requests");
	return;
}

list_probe('the same continuation token again',
	sub { return list_answer('AAAA'); },
	2, qr/repeats a continuation token on page 2 \(the server would list for ever\)$/);
list_probe('a continuation token seen pages ago',
	sub { my ($req, $n) = @_; return list_answer($n % 3 ? "T$n" : 'T1', "k$n"); },
	3, qr/repeats a continuation token on page 3/);
list_probe('the same keys under new tokens',
	sub { my ($req, $n) = @_; return list_answer("T$n", 'a', 'b'); },
	2, qr/went back to key "a" after "b" on page 2; the server repeats its pages$/);
list_probe('truncated without a token',
	sub { return list_answer(undef, 'a'); },
	1, qr/is truncated after page 1 but has no continuation token$/);
list_probe('empty truncated pages for ever',
	sub { my ($req, $n) = @_; return list_answer("T$n"); },
	1000, qr/returned 1000 truncated pages without keys in a row/);

# a server that resets every connection: during the TLS handshake that is a
# (retried) connection error, not a certificate problem
{
	my $listen = IO::Socket::INET->new(
		LocalAddr => '127.0.0.1',
		LocalPort => 0,
		Listen => 16,
		ReuseAddr => 1) or die "reset server: $!";
	my $port = $listen->sockport;
	my $pid = fork();
	die "fork: $!" unless defined $pid;
	if ($pid == 0)
	{
		while (my $c = $listen->accept)
		{
			setsockopt($c, Socket::SOL_SOCKET(), Socket::SO_LINGER(), pack('ii', 1, 0));
			close $c;
		}
		POSIX::_exit(0);
	}
	close $listen;
	my $r = probe(conf(s3_endpoint => "https://127.0.0.1:$port", s3_max_retries => 1),
		'get-key', 'k');
	fake_stop($pid);
	is($r->{get}[0], 'connection', 'connection reset in the TLS handshake: connection error');
	like($r->{_out}, qr/^log: .*retrying/m, 'connection reset in the TLS handshake: retried');
}

########################################################################
# DeleteObjects (expiry): one POST ?delete per 1000 keys, with Content-MD5;
# keys the answer lists as failed are deleted one by one; a server without
# DeleteObjects gets single DELETEs.
{
	require Digest::MD5;
	my $body_seen = '';
	my ($port, $pid, $log) = fake_s3(
		sub {
			my ($req) = @_;
			if ($req->{method} eq 'POST')
			{
				my $want = Digest::MD5::md5_base64($req->{body}) . '==';
				return s3_error(400, 'InvalidDigest') unless ($req->{h}{'content-md5'} // '') eq $want;
				return s3_error(400, 'NotQuiet') unless $req->{body} =~ m{<Quiet>true</Quiet>};
				return s3_error(400, 'BadKeys')
				  unless $req->{body} =~ m{<Object><Key>a/1</Key></Object><Object><Key>a/2&amp;x</Key></Object><Object><Key>a/3</Key></Object>};
				return resp(200, '<?xml version="1.0"?><DeleteResult></DeleteResult>');
			}
			return s3_error(400, 'Unexpected');
		});
	my $r = probe(fake_conf($port), 'delete-keys', 'a/1', 'a/2&x', 'a/3');
	fake_stop($pid);
	my @l = fake_log($log);
	is($r->{delete}[0], 'ok', 'DeleteObjects: three keys deleted') or diag($r->{_out});
	is(scalar(@l), 1, 'DeleteObjects: in one request');
	like($l[0] // '', qr{^conn=1 req=1 POST /fake\?delete= }, 'DeleteObjects: POST ?delete');
}
{
	my ($port, $pid, $log) = fake_s3(
		sub {
			my ($req) = @_;
			return resp(200, '<?xml version="1.0"?><DeleteResult><Deleted><Key>b/1</Key></Deleted>'
				  . '<Error><Key>b/2</Key><Code>AccessDenied</Code><Message>no</Message></Error></DeleteResult>')
			  if $req->{method} eq 'POST';
			return s3_error(403, 'AccessDenied') if $req->{method} eq 'DELETE';
			return s3_error(400, 'Unexpected');
		});
	my $r = probe(fake_conf($port), 'delete-keys', 'b/1', 'b/2', 'b/3');
	fake_stop($pid);
	my @l = fake_log($log);
	is($r->{delete}[0], 'authentication', 'DeleteObjects with a key refused: credentials error');
	like($r->{delete}[1], qr/"b\/2".*AccessDenied/, '... naming the refused key and the S3 code');
	is(scalar(grep { m{ DELETE /fake/b/2 } } @l), 1, '... after trying that key alone');
	is(scalar(grep { m{ DELETE /fake/b/[13] } } @l), 0, '... and only that key');
}
{
	my ($port, $pid, $log) = fake_s3(
		sub {
			my ($req) = @_;
			return s3_error(501, 'NotImplemented') if $req->{method} eq 'POST';
			return resp(204) if $req->{method} eq 'DELETE';
			return s3_error(400, 'Unexpected');
		});
	my $r = probe(fake_conf($port), 'delete-keys', 'c/1', 'c/2');
	fake_stop($pid);
	my @l = fake_log($log);
	is($r->{delete}[0], 'ok', 'a server without DeleteObjects: keys deleted anyway');
	is(join(' ', map { m{ (POST|DELETE) (\S+)} ? "$1 $2" : () } @l),
		'POST /fake?delete= DELETE /fake/c/1 DELETE /fake/c/2', '... one DELETE per key after the 501');
}

########################################################################
# pgbk check: the write round trip (put, refused second put, get, decode,
# delete) against the real server and against fakes that refuse a step.

sub run_check
{
	my ($conf, @args) = @_;
	my ($rc, $out, $err) = PgbkTest::pgbk('check', '--config', $conf, @args);
	$all_output .= $out . $err;
	return ($rc, $out, $err);
}

{
	my $key = PgbkTest::keygen("$work/check.key");
	$s3->make_bucket('checkb');
	my $cconf = conf(bucket => 'checkb', prefix => 'check', encryption => 'on', key_file => $key);
	my ($rc, $out, $err) = run_check($cconf);
	is($rc, 0, 'check against RadosGW: exit 0') or diag($err);
	like($out, qr/^write: +ok \(wrote, read back and decoded a test object\)$/m,
		'check: the write round trip is reported');
	like($out, qr/^overwrite: +refused by the server \(conditional PUT/m,
		'check: RadosGW refuses a conditional PUT of an existing name');
	like($out, qr/^delete: +ok$/m, 'check: delete works');
	my $objects = `radosgw-admin -c ${\ $s3->dir}/ceph.conf -n client.rgw.a bucket list --bucket=checkb 2>/dev/null`;
	like($objects, qr/^\s*\[\s*\]\s*$/, 'check: no test object is left behind (the bucket is empty)')
	  or diag($objects);

	($rc, $out, $err) = run_check($cconf, '--read-only');
	is($rc, 0, 'check --read-only: exit 0');
	like($out, qr/^write: +not checked \(--read-only\)$/m, 'check --read-only: no write');

	($rc, $out, $err) = run_check($cconf, '--bogus');
	is($rc, 2, 'check with an unknown option: usage error');
}

# a server that lists and reads but refuses writes (credentials for restores)
{
	my ($port, $pid, $log) = fake_s3(
		sub {
			my ($req) = @_;
			return s3_error(403, 'AccessDenied') if $req->{method} eq 'PUT';
			return resp(200, '<?xml version="1.0"?><ListBucketResult><IsTruncated>false</IsTruncated></ListBucketResult>',
				'Content-Type' => 'application/xml') if $req->{method} eq 'GET';
			return s3_error(404, 'NoSuchKey');
		});
	my $fconf = fake_conf($port);
	my ($rc, $out, $err) = run_check($fconf);
	is($rc, 4, 'check, writes refused: exit 4 (repository refused)');
	like($err, qr/check: the repository does not accept writes \(archiving and base backups will fail\): .*AccessDenied/,
		'check, writes refused: says so and names the S3 code');
	unlike($out, qr/^write:/m, 'check, writes refused: no "write" line');
	my $before = scalar(fake_log($log));
	($rc, $out, $err) = run_check($fconf, '--read-only');
	is($rc, 0, 'check --read-only with read-only credentials: exit 0') or diag($err);
	fake_stop($pid);
	my @l = fake_log($log);
	is(scalar(grep { / (PUT|DELETE) / } @l[ $before .. $#l ]), 0,
		'check --read-only sends no PUT or DELETE');
	ok(@l > $before, 'check --read-only did contact the server');
}

# a server that ignores If-None-Match and refuses deletes
{
	%store = ();
	my ($port, $pid, $log) = fake_s3(
		sub {
			my ($req) = @_;
			return s3_error(403, 'AccessDenied') if $req->{method} eq 'DELETE';
			return resp(200, '<?xml version="1.0"?><ListBucketResult><IsTruncated>false</IsTruncated></ListBucketResult>',
				'Content-Type' => 'application/xml')
			  if $req->{method} eq 'GET' && $req->{uri} =~ /list-type=2/;
			return store_answer($req);
		});
	my ($rc, $out, $err) = run_check(fake_conf($port));
	fake_stop($pid);
	my @l = fake_log($log);
	like($out, qr/^overwrite: +refused after a HEAD before each PUT \(this server ignores If-None-Match/m,
		'check: a server that ignores If-None-Match gets HEAD before PUT');
	is($rc, 4, 'check, deletes refused: exit 4');
	like($err, qr/the repository refuses deletes, so bk_expire cannot remove what is past its depth.*AccessDenied/,
		'check, deletes refused: says what it breaks');
	my @puts = grep { / PUT \/fake\/pgbk\.check-/ } @l;
	is(scalar(@puts), 1, 'check: the second write was refused after a HEAD, not sent');
}

########################################################################
# No secret in any message or log line.

for my $secret (@secrets)
{
	ok(index($all_output, $secret) < 0,
		'no secret in any output (' . substr($secret, 0, 4) . '...)');
}
ok(length($all_output) > 1000, 'the secret check saw the output');

$s3->stop;
done_testing();
