// SPDX-License-Identifier: Apache-2.0
//
// Readings views that return a row per reading, decoded with each reading's time computed
// in C (part of sluice_readings; the planner hook in sluice_readings.c calls
// sluice_use_time_decoder last).
//
// The views compute `time` as `window_start + off * interval '1 microsecond'` from
// unpack_window's offsets: an interval multiplication (in floating point) and addition per
// row, evaluated again for every condition and sort key on time. Profiled on one series'
// last hour (3,600 readings), that arithmetic was 14% of the backend's cycles. Here every
// readings view in a query (sluice_readings.h view_shape; the ones bucket_partials.c
// rewrote no longer match) calls decode_window(window_start, deltas, vals, flags) instead,
// which returns the time itself, and the view's time becomes that column. The result is
// the same value for every reading (window_start plus whole microseconds), so nothing else
// changes. Where decode_window does not exist (the migration creates it with the module's
// other C functions) the views are left as written.
// clang-format off
#include "postgres.h"  // first, as in every PostgreSQL source file
// clang-format on

#include "catalog/pg_type_d.h"
#include "common/int.h"
#include "fmgr.h"
#include "funcapi.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "parser/parsetree.h"
#include "sluice_readings.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

static const char* const decode_columns[] = {"time", "value", "flags"};

void sluice_use_time_decoder(Query* q, module_context* ctx) {
    if (q->commandType != CMD_SELECT) return;
    ListCell* lc;
    foreach (lc, q->rtable) {
        RangeTblEntry* rte = (RangeTblEntry*)lfirst(lc);
        if (rte->rtekind != RTE_SUBQUERY || rte->subquery == NULL) continue;
        sluice_look_up(ctx);
        if (!OidIsValid(ctx->decode_fn) || !OidIsValid(ctx->unpack_fn)) return;
        view_shape v;
        if (!sluice_match_view(rte->subquery, &v, ctx)) continue;
        List* args = lcons(copyObject(v.window_start), (List*)copyObject(v.unpack->args));
        FuncExpr* call = makeFuncExpr(ctx->decode_fn, get_func_rettype(ctx->decode_fn), args, InvalidOid, InvalidOid,
                                      COERCE_EXPLICIT_CALL);
        call->funcretset = true;
        RangeTblFunction* rtf = (RangeTblFunction*)linitial(v.func_rte->functions);
        rtf->funcexpr = (Node*)call;
        rtf->funccolcount = lengthof(decode_columns);
        List* names = NIL;
        for (size_t i = 0; i < lengthof(decode_columns); ++i)
            names = lappend(names, makeString(pstrdup(decode_columns[i])));
        v.func_rte->eref = makeAlias(v.func_rte->eref->aliasname, names);
        if (v.func_rte->alias != NULL) v.func_rte->alias->colnames = NIL;
        // value and flags keep their columns (2 and 3); time is column 1.
        v.time->expr = (Expr*)makeVar(v.func_index, 1, TIMESTAMPTZOID, -1, InvalidOid, 0);
    }
}

// decode_window(window_start timestamptz, time_deltas int4[], vals float8[], flags int2[])
// RETURNS TABLE (time timestamptz, value float8, flags int2): unpack_window's rows with
// window_start plus the offset in place of the offset. NULL deltas or values: no rows.
PG_FUNCTION_INFO_V1(sluice_decode_window);
Datum sluice_decode_window(PG_FUNCTION_ARGS);

Datum sluice_decode_window(PG_FUNCTION_ARGS) {
    InitMaterializedSRF(fcinfo, 0);
    const int32* d;
    const float8* v;
    const int16* f;
    const int n = sluice_packed_arrays(fcinfo, 1, "decode_window", &d, &v, &f);
    if (n == 0) return (Datum)0;
    const bool no_start = PG_ARGISNULL(0);
    const TimestampTz window_start = no_start ? 0 : PG_GETARG_TIMESTAMPTZ(0);
    if (!no_start && TIMESTAMP_NOT_FINITE(window_start))
        ereport(ERROR, (errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE), errmsg("timestamp out of range")));
    ReturnSetInfo* rsinfo = (ReturnSetInfo*)fcinfo->resultinfo;
    Datum values[3];
    bool nulls[3] = {no_start, false, false};
    int64 off = 0;
    for (int i = 0; i < n; ++i) {
        off += d[i];
        TimestampTz t = 0;
        if (!no_start && (pg_add_s64_overflow(window_start, off, &t) || !IS_VALID_TIMESTAMP(t)))
            ereport(ERROR, (errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE), errmsg("timestamp out of range")));
        values[0] = TimestampTzGetDatum(t);
        values[1] = Float8GetDatum(v[i]);
        values[2] = Int16GetDatum(f != NULL ? f[i] : 0);
        tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
    }
    return (Datum)0;
}
