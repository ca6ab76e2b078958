/* C ABI of libtt_deploy: the C++ ttdeploy::Runtime behind an opaque handle, for C controllers and
 * for Python's ctypes (tests/cpp/test_cpp_runtime.py).
 *
 * Every function returns a tt_deploy_status; on failure tt_deploy_last_error() holds the message
 * (per thread, until that thread's next failing call). No function throws or aborts. */
#ifndef TT_DEPLOY_H
#define TT_DEPLOY_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Same values as ttdeploy::ErrorCode (runtime.hpp), one per tt_deploy.errors exception. */
typedef enum tt_deploy_status {
  TT_DEPLOY_OK = 0,
  TT_DEPLOY_ERR_BUNDLE = 1,             /* BundleError: malformed or inconsistent bundle file */
  TT_DEPLOY_ERR_MISSING_FILE = 2,       /* BundleError: a file the manifest names is missing */
  TT_DEPLOY_ERR_HASH_MISMATCH = 3,      /* BundleError: a file does not match its recorded sha256 */
  TT_DEPLOY_ERR_SCHEMA = 4,             /* BundleError: schema is not "tt-deploy.bundle/1" */
  TT_DEPLOY_ERR_UNKNOWN_NAME = 5,       /* UnknownNameError: unknown skill */
  TT_DEPLOY_ERR_INPUT = 6,              /* InputError: wrong name, dtype, size, NaN/inf, null pointer */
  TT_DEPLOY_ERR_NONFINITE_ACTIONS = 7,  /* NonFiniteActionsError */
  TT_DEPLOY_ERR_CONCURRENT_USE = 8,     /* ConcurrentUseError: overlapping calls on one runtime */
  TT_DEPLOY_ERR_CLOSED = 9,             /* use after tt_deploy_close */
  TT_DEPLOY_ERR_BACKEND = 10,           /* the inference library failed at run time */
  TT_DEPLOY_ERR_INTERNAL = 11           /* a bug or out of memory: please report it */
} tt_deploy_status;

typedef enum tt_deploy_dtype { TT_DEPLOY_FLOAT32 = 0, TT_DEPLOY_BOOL = 1 } tt_deploy_dtype;

/* One token-group array (float32) or mask (1-byte bool, nonzero = visible) of one sample, row-major,
 * named as in manifest.json's token_groups; count = number of elements. */
typedef struct tt_deploy_input {
  const char* name;
  int32_t dtype; /* tt_deploy_dtype */
  const void* data;
  size_t count;
} tt_deploy_input;

typedef struct tt_deploy_options {
  const char* const* skills; /* resident skills; NULL or n_skills 0 = every skill of the bundle */
  size_t n_skills;
  int32_t num_threads;        /* 0 = physical cores */
  int32_t nonfinite_zeros;    /* 0: NaN/inf actions fail the call; 1: they become zeros (counted) */
  int32_t allow_hidden_prior; /* 1: a prior-prompt skill may run without its prompt */
} tt_deploy_options;

typedef struct tt_deploy_runtime tt_deploy_runtime;

/* Loads and checks `bundle_dir` (options NULL = defaults); *out is NULL on failure. */
tt_deploy_status tt_deploy_create(const char* bundle_dir, const tt_deploy_options* options,
                                  tt_deploy_runtime** out);
/* Frees the handle (NULL is a no-op). Not to be called while another thread uses it. */
void tt_deploy_destroy(tt_deploy_runtime* runtime);
tt_deploy_status tt_deploy_close(tt_deploy_runtime* runtime);

tt_deploy_status tt_deploy_switch_skill(tt_deploy_runtime* runtime, const char* skill);
/* The active skill's actions for one sample into out[out_count] (out_count = action dim). */
tt_deploy_status tt_deploy_act_into(tt_deploy_runtime* runtime, const tt_deploy_input* inputs, size_t n_inputs,
                                    const float* task_obs, size_t task_obs_count, float* out, size_t out_count);

tt_deploy_status tt_deploy_action_dim(const tt_deploy_runtime* runtime, size_t* out);
tt_deploy_status tt_deploy_task_obs_dim(const tt_deploy_runtime* runtime, const char* skill, size_t* out);
tt_deploy_status tt_deploy_nonfinite_count(const tt_deploy_runtime* runtime, uint64_t* out);
/* The active skill's name (valid while the runtime lives), or NULL for a NULL handle. */
const char* tt_deploy_active_skill(const tt_deploy_runtime* runtime);

/* The message of this thread's last failed call ("" if none). */
const char* tt_deploy_last_error(void);
/* "TT_DEPLOY_ERR_HASH_MISMATCH", ... */
const char* tt_deploy_status_name(tt_deploy_status status);

#ifdef __cplusplus
}
#endif

#endif /* TT_DEPLOY_H */
