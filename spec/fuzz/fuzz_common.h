/*
 * fuzz_common.h - what the fuzz targets share: the input being run, and how
 * a violated property is reported (the input, escaped, then abort() so
 * libFuzzer keeps it as a crash). A target defines FUZZ_NAME, then
 * includes this once.
 */
#ifndef FUZZ_COMMON_H
#define FUZZ_COMMON_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static const uint8_t *cur_data; /* the input, for failure reports */
static size_t cur_size;

static void fail(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
static void fail(const char *fmt, ...) {
  va_list ap;
  size_t i;
  fprintf(stderr, "\n" FUZZ_NAME ": property violated: ");
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\ninput (%zu bytes, first 200 escaped): \"", cur_size);
  for (i = 0; i < cur_size && i < 200; i++) {
    unsigned char c = cur_data[i];
    if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\')
      fputc(c, stderr);
    else
      fprintf(stderr, "\\x%02x", c);
  }
  fprintf(stderr, "\"\n");
  abort();
}

#define CHECK(cond, ...)            \
  do {                              \
    if (!(cond)) fail(__VA_ARGS__); \
  } while (0)

#endif
