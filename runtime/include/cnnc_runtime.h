/* The cnnc runtime for C: a thread pool for the threaded entry point of compiled
 * models. Link with libcnnc_runtime.a (and -lpthread -ldl -lm on Linux).
 *
 *   cnnc_pool *pool = cnnc_pool_new(2);
 *   NAME_run_threaded(inputs, outputs, workspace, cnnc_pool_parallel_for, pool);
 *   cnnc_pool_free(pool);
 */
#ifndef CNNC_RUNTIME_H
#define CNNC_RUNTIME_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#ifndef CNNC_PARALLEL_FOR_DEFINED
#define CNNC_PARALLEL_FOR_DEFINED
/* One iteration of a parallel loop in generated code. */
typedef void (*cnnc_task_fn)(void *const *bufs, size_t index);
/* Runs task(bufs, i) for i in [0, count) and returns when all are done. */
typedef void (*cnnc_parallel_for_fn)(void *pool, cnnc_task_fn task, void *const *bufs, size_t count);
#endif

typedef struct cnnc_pool cnnc_pool;

/* A pool running loops on `threads` threads, the calling thread included. */
cnnc_pool *cnnc_pool_new(size_t threads);
void cnnc_pool_free(cnnc_pool *pool);
/* The cnnc_parallel_for_fn to pass with a pool from cnnc_pool_new. */
void cnnc_pool_parallel_for(void *pool, cnnc_task_fn task, void *const *bufs, size_t count);

#ifdef __cplusplus
}
#endif

#endif /* CNNC_RUNTIME_H */
