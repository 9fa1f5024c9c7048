/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* RUNNING_ON_VALGRIND for the tests, whether or not valgrind's headers are installed: the
 * demo job builds the tests without the test packages (valgrind among them), and where
 * valgrind is not installed nothing can run under it. */
#pragma once

#if defined(__has_include) && __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#else
#define RUNNING_ON_VALGRIND 0
#endif
