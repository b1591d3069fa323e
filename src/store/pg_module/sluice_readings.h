// SPDX-License-Identifier: Apache-2.0
//
// What the parts of the sluice_readings module share: sluice_readings.c (the planner hook
// that adds window_start bounds, and unpack_window), bucket_partials.c (grouped aggregates
// answered from per-bucket partials of each packed window, and the view matcher) and
// decode_window.c (the views' reading times computed in C) and ordered_decode.c (readings in
// time order without a sort).
#ifndef SLUICE_READINGS_H
#define SLUICE_READINGS_H

#include "fmgr.h"
#include "nodes/parsenodes.h"
#include "postgres.h"
#include "utils/array.h"

// The width of a packed window (store/packing.cc; the settings row window_us).
#define SLUICE_WINDOW_US INT64CONST(600000000)

// Catalog objects the rewrites look for, looked up once per planned statement.
typedef struct module_context {
    Oid packed_relid;  // sluice_telemetry.telemetry_packed, InvalidOid when absent
    Oid unpack_fn;     // sluice_telemetry.unpack_window(int4[], float8[], int2[])
    Oid bucket_fn;     // sluice_telemetry.bucket_window(...), InvalidOid when absent
    Oid decode_fn;     // sluice_telemetry.decode_window(...), InvalidOid when absent
    bool looked_up;
} module_context;

void sluice_look_up(module_context* ctx);

// The context of the statement being planned with the module's rewrites on, else NULL
// (for the path hooks, which run inside standard_planner).
module_context* sluice_planning_context(void);

// Comparisons with a timestamptz on at least one side, as `left OP right`: kind -1 for < <=,
// +1 for > >=, 0 for =; strict for < >.
typedef struct comparison {
    Oid fn;
    int kind;
    bool strict;
} comparison;

const comparison* sluice_find_comparison(Oid fn);

Oid sluice_operator_oid(const char* name, Oid left, Oid right);

// A query that only selects and joins: every row it returns carries the values of one row
// of each relation it reads.
bool sluice_only_selects_and_joins(const Query* s);

// Whether `ws`, a Var of `s`, is window_start of sluice_telemetry.telemetry_packed.
bool sluice_is_window_start(const Query* s, const Var* ws, module_context* ctx);

// The elements of a packed row's array (one dimension or empty, no NULLs); errors name
// `fn` and `what`.
int sluice_array_length(ArrayType* a, const char* fn, const char* what);

// A packed row's arrays, read from arguments first.. first+2 (time_deltas, vals, flags) of a
// set-returning function `fn`: checked (one dimension, no NULLs, equal lengths), a NULL
// flags array as f == NULL. Returns the number of readings; 0 also for NULL deltas or vals.
int sluice_packed_arrays(FunctionCallInfo fcinfo, int first, const char* fn, const int32** d, const float8** v,
                         const int16** f);

// The same from a packed row's column values (each with its NULL flag).
int sluice_packed_values(Datum deltas, bool deltas_null, Datum vals, bool vals_null, Datum flags, bool flags_null,
                         const char* fn, const int32** d, const float8** v, const int16** f);

// A readings view (sluice_telemetry.readings or telemetry, as a subquery after rewriting):
// packed rows joined (inner) with unpack_window(deltas, vals, flags) of them, its `time`
// window_start + offset, `value` and `flags` the function's columns.
typedef struct view_shape {
    Query* view;
    RangeTblEntry* func_rte;  // the view's unpack_window(...) FROM item
    Index func_index;
    FuncExpr* unpack;
    Var* window_start;
    TargetEntry* time;  // window_start + offset
    TargetEntry* value;
    TargetEntry* flags;  // may be absent
} view_shape;

// Whether `s` is such a view, with nothing else of the function used (bucket_partials.c).
bool sluice_match_view(Query* s, view_shape* out, module_context* ctx);

// Makes every readings view q reads decode with decode_window, which returns each reading's
// time, instead of unpack_window and interval arithmetic per row (decode_window.c).
void sluice_use_time_decoder(Query* q, module_context* ctx);

// Rewrites q, a grouped aggregate over one readings view, to aggregate per-bucket partials
// (bucket_partials.c); leaves it as it is where that could change its result.
void sluice_use_bucket_partials(Query* q, module_context* ctx);

// Registers the custom scan that returns a readings view's rows in time order without
// sorting them (ordered_decode.c); called once from _PG_init.
void sluice_ordered_decode_init(void);

#endif
