/* A C client of tt_deploy.h, compiled as C: the header is valid C and the ABI works without C++. */
#include "c_abi_client.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tt_deploy/tt_deploy.h"

int c_client_missing_bundle(const char* dir) {
  tt_deploy_runtime* rt = (tt_deploy_runtime*)1;
  tt_deploy_status s = tt_deploy_create(dir, NULL, &rt);
  if (s != TT_DEPLOY_ERR_MISSING_FILE || rt != NULL) return 1;
  if (strstr(tt_deploy_last_error(), "manifest.json") == NULL) return 2;
  if (strcmp(tt_deploy_status_name(s), "TT_DEPLOY_ERR_MISSING_FILE") != 0) return 3;
  return 0;
}

int c_client_run(const char* bundle, const tt_deploy_input* inputs, size_t n_inputs, float* out, size_t out_count) {
  tt_deploy_options options = {NULL, 0, 1, 0, 0};
  tt_deploy_runtime* rt = NULL;
  if (tt_deploy_create(bundle, &options, &rt) != TT_DEPLOY_OK) return 1;
  size_t actions = 0, width = 0;
  const char* active = tt_deploy_active_skill(rt);
  if (tt_deploy_action_dim(rt, &actions) != TT_DEPLOY_OK || actions != out_count) return 2;
  if (active == NULL || tt_deploy_task_obs_dim(rt, active, &width) != TT_DEPLOY_OK) return 3;
  float* task_obs = (float*)calloc(width, sizeof(float));
  int rc = tt_deploy_act_into(rt, inputs, n_inputs, task_obs, width, out, out_count) == TT_DEPLOY_OK ? 0 : 4;
  for (size_t i = 0; rc == 0 && i < out_count; ++i) rc = isfinite(out[i]) ? 0 : 5;
  if (rc == 0 && tt_deploy_switch_skill(rt, "no-such-skill") != TT_DEPLOY_ERR_UNKNOWN_NAME) rc = 6;
  if (rc == 0 && tt_deploy_act_into(NULL, inputs, n_inputs, task_obs, width, out, out_count) != TT_DEPLOY_ERR_INPUT) rc = 7;
  if (rc == 0 && tt_deploy_close(rt) != TT_DEPLOY_OK) rc = 8;
  if (rc == 0 && tt_deploy_act_into(rt, inputs, n_inputs, task_obs, width, out, out_count) != TT_DEPLOY_ERR_CLOSED) rc = 9;
  free(task_obs);
  tt_deploy_destroy(rt);
  tt_deploy_destroy(NULL);
  return rc;
}
