
=pod

=head1 NAME

PgbkS3 - a throwaway Ceph RadosGW (real S3, real SigV4 checks) for pgbk's TAP tests

=head1 SYNOPSIS

  use PgbkS3;

  my $s3 = PgbkS3->start();               # mon + memstore OSD + radosgw on 127.0.0.1
  $s3->write_pgbk_conf("$dir/pgbk.conf", prefix => 'node1', key_file => $key, encryption => 'off');
  $s3->make_bucket('second-bucket');

  $s3->stop_gateway;                      # outage: radosgw down, data kept
  $s3->start_gateway;                     # same ports, same objects

  $s3->stop;                              # everything down (also done at exit)

=head1 DESCRIPTION

Wraps F<scripts/rgw.sh>.  The server listens on 127.0.0.1 only, on free ports,
over HTTPS (certificate from a generated CA, see C<ca_file>) and plain HTTP.
Its host name for virtual-host style requests is C<s3.localhost>: use
C<s3_endpoint = 'https://s3.localhost:PORT'> with
C<s3_connect_host = '127.0.0.1'>.

Objects live in the OSD's memory (memstore): C<stop> and C<start_again> lose
them all.  Tests that need an outage with the data intact use C<stop_gateway>
and C<start_gateway>, which stop and restart radosgw only.

Everything a test started is stopped when the test exits, also when it dies
(END block), but never by a forked child of the test.

=cut

package PgbkS3;

use strict;
use warnings;

use Carp;
use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Spec;
use File::Temp ();

# servers started by this process and not stopped yet
my %live;

my $rgw_sh =
  defined $ENV{PGBK_SRCDIR}
  ? "$ENV{PGBK_SRCDIR}/scripts/rgw.sh"
  : abs_path(dirname(__FILE__) . '/../../scripts/rgw.sh');

=pod

=head1 METHODS

=over

=item PgbkS3->start(%params)

Start a server in a new directory under C<$PostgreSQL::Test::Utils::tmp_check>
(or the system temporary directory).  Parameters: C<base_dir>, C<access_key>,
C<secret_key>, C<bucket> (default C<pgbk-test>).  Dies if it does not come up.

=cut

sub start
{
	my ($class, %params) = @_;
	my $base = $params{base_dir} // _default_base();
	my $dir = File::Temp::tempdir('s3_XXXX', DIR => $base, CLEANUP => 0);
	my $self = bless {
		dir => $dir,
		owner => $$,
		running => 0,
		params => \%params,
		env => {},
	}, $class;

	_install_signal_handlers();
	$self->_start_cluster(
		RGW_ACCESS_KEY => $params{access_key},
		RGW_SECRET_KEY => $params{secret_key},
		RGW_BUCKET => $params{bucket});
	return $self;
}

# A test killed by SIGINT/SIGTERM would skip END blocks and leave the
# servers running: turn those signals into an exit, unless the test has
# handlers of its own.
sub _install_signal_handlers
{
	for my $sig (qw(INT TERM HUP))
	{
		next if defined $SIG{$sig} && $SIG{$sig} ne 'DEFAULT';
		$SIG{$sig} = sub { exit(1); };
	}
	return;
}

sub _default_base
{
	no warnings 'once';
	my $d = $PostgreSQL::Test::Utils::tmp_check;
	return $d if defined $d && -d $d;
	return File::Spec->tmpdir;
}

# run rgw.sh with extra environment; output goes to DIR.log
sub _rgw
{
	my ($self, $env, @args) = @_;
	my $log = "$self->{dir}.log";
	local %ENV = %ENV;
	while (my ($k, $v) = each %$env)
	{
		$ENV{$k} = $v if defined $v;
	}
	my $rc = system("\"$rgw_sh\" @args >>\"$log\" 2>&1");
	return 1 if $rc == 0;
	my $tail = '';
	if (open my $fh, '<', $log)
	{
		my @lines = <$fh>;
		close $fh;
		$tail = join('', @lines[ ($#lines > 30 ? $#lines - 30 : 0) .. $#lines ]);
	}
	croak "rgw.sh @args failed (log in $log):\n$tail";
}

sub _start_cluster
{
	my ($self, %env) = @_;
	$self->_rgw(\%env, 'start', "\"$self->{dir}\"");
	$self->{running} = 1;
	$live{"$self"} = $self;
	$self->_read_env;
	return;
}

sub _read_env
{
	my ($self) = @_;
	my %env;
	open my $fh, '<', "$self->{dir}/env"
	  or croak "could not read $self->{dir}/env: $!";
	while (my $line = <$fh>)
	{
		chomp $line;
		next unless $line =~ /^(\w+)=(.*)$/;
		my ($k, $v) = ($1, $2);
		$v =~ s/^'(.*)'$/$1/;
		$env{$k} = $v;
	}
	close $fh;
	$self->{env} = \%env;
	return;
}

=pod

=item Accessors

C<endpoint> (https URL), C<endpoint_http>, C<https_port>, C<http_port>,
C<ca_file>, C<access_key>, C<secret_key>, C<bucket>, C<dir>, C<host>
(always 127.0.0.1), C<virtual_host_endpoint> (https://s3.localhost:PORT, to
use with s3_connect_host = 127.0.0.1 and s3_uri_style = host).

=cut

sub endpoint { return $_[0]->{env}{RGW_ENDPOINT_HTTPS}; }
sub endpoint_http { return $_[0]->{env}{RGW_ENDPOINT_HTTP}; }
sub https_port { return $_[0]->{env}{RGW_HTTPS_PORT}; }
sub http_port { return $_[0]->{env}{RGW_HTTP_PORT}; }
sub ca_file { return $_[0]->{env}{RGW_CA_FILE}; }
sub access_key { return $_[0]->{env}{RGW_ACCESS_KEY}; }
sub secret_key { return $_[0]->{env}{RGW_SECRET_KEY}; }
sub bucket { return $_[0]->{env}{RGW_BUCKET}; }
sub dir { return $_[0]->{dir}; }
sub host { return '127.0.0.1'; }

sub virtual_host_endpoint
{
	my ($self) = @_;
	return 'https://s3.localhost:' . $self->https_port;
}

=pod

=item $s3->stop

Stop the monitor, the OSD and radosgw (all data is lost).  Harmless when
already stopped.

=cut

sub stop
{
	my ($self) = @_;
	return unless $self->{running};
	$self->{running} = 0;
	delete $live{"$self"};
	$self->_rgw({}, 'stop', "\"$self->{dir}\"");
	return;
}

=pod

=item $s3->start_again

Start a fresh server in the same directory with the same ports, keys and
bucket name, so existing pgbk.conf files stay valid.  The bucket is new and
EMPTY: memstore does not keep data across a full stop.  For an outage that
keeps the data use stop_gateway/start_gateway.

=cut

sub start_again
{
	my ($self) = @_;
	my %env = %{ $self->{env} };
	$self->stop;
	$self->_start_cluster(
		map { $_ => $env{$_} }
		  qw(RGW_MON_PORT RGW_HTTP_PORT RGW_HTTPS_PORT RGW_ACCESS_KEY RGW_SECRET_KEY RGW_BUCKET));
	return;
}

=pod

=item $s3->stop_gateway / $s3->start_gateway

Stop radosgw only (clients get "connection refused"), and start it again on
the same ports.  The monitor and the OSD keep running, so every object
survives.

=cut

sub stop_gateway
{
	my ($self) = @_;
	croak "server is not running" unless $self->{running};
	$self->_rgw({}, 'stop-gateway', "\"$self->{dir}\"");
	$self->_read_env;
	return;
}

sub start_gateway
{
	my ($self) = @_;
	croak "server is not running" unless $self->{running};
	$self->_rgw({}, 'start-gateway', "\"$self->{dir}\"");
	$self->_read_env;
	return;
}

=pod

=item $s3->make_bucket($name)

Create another bucket owned by the same user.

=cut

sub make_bucket
{
	my ($self, $name) = @_;
	croak "invalid bucket name \"$name\"" unless $name =~ /^[a-z0-9][a-z0-9.-]{2,62}$/;
	$self->_rgw({}, 'make-bucket', "\"$self->{dir}\"", $name);
	return;
}

=pod

=item $s3->write_pgbk_conf($path, %overrides)

Write a pgbk.conf for this server at $path and its credentials file next to
it ($path with ".conf" replaced by ".credentials", mode 0600).  Defaults:
repository 's3://BUCKET/pgbk', s3_endpoint (https), s3_region us-east-1,
s3_uri_style path, s3_ca_file, s3_credentials_file.  Overrides:

  prefix => 'p', bucket => 'b'     the repository URL parts
  access_key, secret_key,          what goes into the credentials file
  session_token, profile           (profile also sets s3_profile)
  any pgbk.conf setting => value   added or replaced; undef removes it

Returns $path.

=cut

sub write_pgbk_conf
{
	my ($self, $path, %o) = @_;
	my $prefix = exists $o{prefix} ? delete $o{prefix} : 'pgbk';
	my $bucket = exists $o{bucket} ? delete $o{bucket} : $self->bucket;
	my $access = exists $o{access_key} ? delete $o{access_key} : $self->access_key;
	my $secret = exists $o{secret_key} ? delete $o{secret_key} : $self->secret_key;
	my $token = delete $o{session_token};
	my $profile = delete $o{profile};
	(my $cred_path = $path) =~ s/\.conf$//;
	$cred_path .= '.credentials';

	my %set = (
		repository => 's3://' . $bucket . (length $prefix ? "/$prefix" : ''),
		s3_endpoint => $self->endpoint,
		s3_region => 'us-east-1',
		s3_uri_style => 'path',
		s3_ca_file => $self->ca_file,
		s3_credentials_file => $cred_path);
	$set{s3_profile} = $profile if defined $profile;
	$set{$_} = $o{$_} for keys %o;

	my @order = (
		'repository',
		sort(grep { /^s3_/ && $_ ne 'repository' } keys %set),
		sort(grep { !/^s3_/ && $_ ne 'repository' } keys %set));
	# mode 0600 whatever the umask: pgbk refuses a pgbk.conf others could edit
	my $oldmask = umask 077;
	my $fh;
	if (!open $fh, '>', $path)
	{
		umask $oldmask;
		croak "could not write $path: $!";
	}
	umask $oldmask;
	chmod 0600, $path;
	print $fh "# pgbk.conf for the test S3 server in $self->{dir}\n";
	for my $k (@order)
	{
		next unless defined $set{$k};
		(my $v = $set{$k}) =~ s/'/''/g;
		print $fh "$k = '$v'\n";
	}
	close $fh or croak "could not write $path: $!";

	my $cred = '[' . ($profile // 'default') . "]\n"
	  . "aws_access_key_id = $access\n"
	  . "aws_secret_access_key = $secret\n";
	$cred .= "aws_session_token = $token\n" if defined $token;
	unlink $cred_path;
	my $old = umask 077;
	open my $cf, '>', $cred_path
	  or do { umask $old; croak "could not write $cred_path: $!" };
	print $cf $cred;
	close $cf;
	umask $old;
	chmod 0600, $cred_path;
	return $path;
}

sub DESTROY
{
	my ($self) = @_;
	local ($?, $@, $!);
	return unless $self->{running} && $self->{owner} == $$;
	eval { $self->stop; };
	return;
}

# Whatever happened (die, BAIL_OUT, a failed test), take the servers down.
# A forked child (fake servers, IPC::Run helpers) must not.
END
{
	local ($?, $@, $!);
	for my $s (values %live)
	{
		next unless $s->{owner} == $$;
		eval { $s->stop; };
	}
}

=pod

=back

=cut

1;
