/*
 * unit.h
 *	  Tests of every room: the shared includes of the cmocka unit tests (cmocka, base).
 *	  Shared includes for the cmocka unit tests of common/ modules.
 *
 * Each common/test/test_<module>.c is one program; `make check-unit` builds
 * and runs them all.  PGBK_VECTORS names the directory with test vectors
 * (t/vectors), PGBK_TEST_TMP a scratch directory (default /tmp).
 */
#ifndef PGBK_UNIT_H
#define PGBK_UNIT_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "base/pgbk_common.h"

static inline const char *
unit_vectors_dir(void)
{
	const char *d = getenv("PGBK_VECTORS");

	return d ? d : "t/vectors";
}

#endif /* PGBK_UNIT_H */
