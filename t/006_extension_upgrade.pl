# Extension upgrades are real: `ALTER EXTENSION pgbk UPDATE` from the
# shipped 1.0 script gives exactly the objects, definitions, owners, grants,
# comments and catalog rows of a fresh install of the current version.  The
# two catalogs are described object by object (not counted) and compared.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('upgrade');
$node->init;
$node->append_conf('postgresql.conf',
	"shared_preload_libraries = 'pgbk'\narchive_timeout = 0\n");
$node->start;

my $current = $node->safe_psql('postgres',
	"SELECT default_version FROM pg_available_extensions WHERE name = 'pgbk'");
isnt($current, '1.0', "the current version ($current) is past the shipped 1.0");

# Every shipped version upgrades: 1.0 (through the shipped 1.0--1.1
# script) and 1.1, each in its own database.
my @shipped = ('1.0', '1.1');
$node->safe_psql('postgres', 'CREATE DATABASE fresh');
$node->safe_psql('fresh', 'CREATE EXTENSION pgbk');
for my $from (@shipped)
{
	my $db = 'upgraded_' . ($from =~ s/\./_/r);
	$node->safe_psql('postgres', "CREATE DATABASE $db");
	$node->safe_psql($db, "CREATE EXTENSION pgbk VERSION '$from'");
	is($node->safe_psql($db, "SELECT extversion FROM pg_extension WHERE extname = 'pgbk'"),
		$from, "the shipped $from script installs");
	$node->safe_psql($db, 'ALTER EXTENSION pgbk UPDATE');
	is($node->safe_psql($db, "SELECT extversion FROM pg_extension WHERE extname = 'pgbk'"),
		$current, "ALTER EXTENSION pgbk UPDATE reaches $current from $from");
}

# Every member object of the extension with its full definition.  Tables
# bring their columns (in order), defaults, constraints, indexes, triggers,
# options and grants; functions their whole definition, owner, grants and
# settings; views their query.  Comments for all.
my $describe = q{
WITH member AS (
	SELECT d.classid, d.objid
	FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid
	WHERE d.refclassid = 'pg_extension'::regclass AND e.extname = 'pgbk' AND d.deptype = 'e'
), described AS (
	SELECT pg_describe_object(m.classid, m.objid, 0) AS obj,
		coalesce(obj_description(m.objid, m.classid::regclass::text), '') AS comment,
		CASE m.classid
		WHEN 'pg_proc'::regclass THEN
			(SELECT pg_get_functiondef(p.oid) || ' owner=' || p.proowner::regrole
				|| ' acl=' || coalesce(p.proacl::text, '') || ' secdef=' || p.prosecdef
				|| ' config=' || coalesce(p.proconfig::text, '')
			 FROM pg_proc p WHERE p.oid = m.objid)
		WHEN 'pg_class'::regclass THEN
			(SELECT 'kind=' || c.relkind::text || ' owner=' || c.relowner::regrole
				|| ' acl=' || coalesce(c.relacl::text, '') || ' options=' || coalesce(c.reloptions::text, '')
				|| E'\n' || coalesce(CASE WHEN c.relkind = 'v' THEN pg_get_viewdef(c.oid) END, '')
				|| E'\ncolumns:' || coalesce((SELECT string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
						|| CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
						|| coalesce(' default ' || pg_get_expr(ad.adbin, ad.adrelid), '')
						|| coalesce(' acl=' || a.attacl::text, '')
						|| coalesce(' comment=' || col_description(c.oid, a.attnum), ''),
						E'\n  ' ORDER BY a.attnum)
					FROM pg_attribute a LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
					WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), '')
				|| E'\nconstraints:' || coalesce((SELECT string_agg(co.conname || ' ' || pg_get_constraintdef(co.oid), E'\n  ' ORDER BY co.conname)
					FROM pg_constraint co WHERE co.conrelid = c.oid), '')
				|| E'\nindexes:' || coalesce((SELECT string_agg(pg_get_indexdef(i.indexrelid), E'\n  ' ORDER BY 1)
					FROM pg_index i WHERE i.indrelid = c.oid), '')
				|| E'\ntriggers:' || coalesce((SELECT string_agg(pg_get_triggerdef(t.oid), E'\n  ' ORDER BY 1)
					FROM pg_trigger t WHERE t.tgrelid = c.oid AND NOT t.tgisinternal), '')
				|| E'\npolicies:' || coalesce((SELECT string_agg(pol.polname || ' ' || pol.polcmd::text || ' ' || coalesce(pg_get_expr(pol.polqual, pol.polrelid), ''), E'\n  ' ORDER BY 1)
					FROM pg_policy pol WHERE pol.polrelid = c.oid), '')
			 FROM pg_class c WHERE c.oid = m.objid)
		WHEN 'pg_type'::regclass THEN
			(SELECT 'type=' || t.typtype::text || ' owner=' || t.typowner::regrole || ' acl=' || coalesce(t.typacl::text, '')
				|| coalesce((SELECT string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod), ', ' ORDER BY a.attnum)
					FROM pg_attribute a WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped), '')
				|| coalesce((SELECT string_agg(e.enumlabel, ', ' ORDER BY e.enumsortorder) FROM pg_enum e WHERE e.enumtypid = t.oid), '')
			 FROM pg_type t WHERE t.oid = m.objid)
		WHEN 'pg_namespace'::regclass THEN
			(SELECT 'owner=' || n.nspowner::regrole || ' acl=' || coalesce(n.nspacl::text, '')
			 FROM pg_namespace n WHERE n.oid = m.objid)
		ELSE 'other'
		END AS definition
	FROM member m
)
SELECT string_agg(obj || E'\n' || definition || E'\ncomment: ' || comment, E'\n----\n' ORDER BY obj)
FROM described
};

# Catalog rows: every table of schema pgbk, rows in a stable order, without
# the columns whose value is the moment of installation.
my $tables_q = q{
SELECT c.relname, string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE n.nspname = 'pgbk' AND c.relkind = 'r'
  AND a.atttypid NOT IN ('timestamptz'::regtype, 'timestamp'::regtype)
GROUP BY c.relname ORDER BY c.relname
};

sub describe
{
	my ($db) = @_;
	my $out = $node->safe_psql($db, $describe);
	my $ext = $node->safe_psql($db,
		q{SELECT extversion || ' ' || extrelocatable || ' config=' ||
		  coalesce((SELECT string_agg(c::regclass::text, ',' ORDER BY c::regclass::text) FROM unnest(extconfig) c), '')
		  FROM pg_extension WHERE extname = 'pgbk'});
	my $rows = '';
	for my $line (split /\n/, $node->safe_psql($db, $tables_q))
	{
		my ($table, $cols) = split /\|/, $line, 2;
		$rows .= "== pgbk.$table\n"
		  . $node->safe_psql($db,
			"SELECT $cols FROM pgbk.$table ORDER BY ($cols)::text") . "\n";
	}
	return ("extension: $ext\n$out", $rows);
}

my ($fresh_objects, $fresh_rows) = describe('fresh');
cmp_ok(length($fresh_objects), '>', 10000, 'the description covers the catalog');
like($fresh_objects, qr/function bk_restore_point\(timestamp with time zone\)/,
	'functions are described');
like($fresh_objects, qr/table pgbk\.wal\n/, 'tables are described');

# On a difference, show the first differing object rather than two walls of text.
sub first_difference
{
	my ($a, $b) = @_;
	my @a = split /\n----\n/, $a;
	my @b = split /\n----\n/, $b;
	for my $i (0 .. ($#a > $#b ? $#a : $#b))
	{
		my $x = $a[$i] // '(none)';
		my $y = $b[$i] // '(none)';
		return "fresh:\n$x\nupgraded:\n$y" if $x ne $y;
	}
	return '';
}
# The same holds for what the roles may do (grants on roles are cluster-wide,
# so they are checked through has_function_privilege in each database).
my $privs = q{
SELECT string_agg(r || ' ' || p.oid::regprocedure::text || ' ' ||
	has_function_privilege(r, p.oid, 'EXECUTE'), E'\n' ORDER BY p.oid::regprocedure::text, r)
FROM pg_proc p
JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'pgbk',
unnest(ARRAY['pgbk_reader', 'pgbk_admin', 'pgbk_recorder', 'public']) r
};
$node->safe_psql('postgres', 'CREATE ROLE upgrade_nobody LOGIN');
my $pub_fresh = $node->safe_psql('fresh', $privs =~ s/'public'/'upgrade_nobody'/r);
unlike($pub_fresh, qr/^upgrade_nobody .* t$/m, 'a role without grants may execute nothing');
for my $from (@shipped)
{
	my $db = 'upgraded_' . ($from =~ s/\./_/r);
	my ($upgraded_objects, $upgraded_rows) = describe($db);
	my $diff = first_difference($fresh_objects, $upgraded_objects);
	is($diff, '', "upgraded from $from: objects, definitions and grants equal a fresh install");
	is($upgraded_rows, $fresh_rows, "upgraded from $from: catalog rows equal a fresh install");
	my $pub_upgraded = $node->safe_psql($db, $privs =~ s/'public'/'upgrade_nobody'/r);
	is($pub_upgraded, $pub_fresh, "upgraded from $from: each role may execute the same functions");
}

$node->stop;
done_testing();
