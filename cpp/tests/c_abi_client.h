#ifndef TT_DEPLOY_C_ABI_CLIENT_H
#define TT_DEPLOY_C_ABI_CLIENT_H
#include "tt_deploy/tt_deploy.h"
#ifdef __cplusplus
extern "C" {
#endif
/* 0 when each step behaves as documented, else the number of the first step that did not. */
int c_client_missing_bundle(const char* dir);
int c_client_run(const char* bundle, const tt_deploy_input* inputs, size_t n_inputs, float* out, size_t out_count);
#ifdef __cplusplus
}
#endif
#endif
