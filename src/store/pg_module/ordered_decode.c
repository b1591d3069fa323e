// SPDX-License-Identifier: Apache-2.0
//
// Readings in time order without sorting them (part of sluice_readings).
//
// A readings view joins each packed row with decode_window(...) of it (decode_window.c).
// For `ORDER BY time` PostgreSQL could only sort the decoded readings: it cannot know that
// a packed row's readings are in time order and lie in [window_start, window_start + 10
// min) (store/packing.cc writes them so, compaction keeps it, and the bounds the planner
// hook adds already rely on it). Measured on one series' last hour, sorting its 3,600
// readings cost more than finding and decoding them: the sort's ~300 kB are allocated
// afresh by every query (glibc hands them back to the kernel after each), ~85 page faults
// per query, where TimescaleDB's columnstore reads the same rows in order and sorts nothing.
//
// Where a query wants its rows in a readings view's time order (root->query_pathkeys begins
// with time: ORDER BY, also a window's or DISTINCT's order), the join of the packed rows
// with decode_window gets one more path: a custom scan, "SluiceOrderedDecode", over the
// packed rows (with whatever else was joined to them) in window_start order, which decodes
// each row itself and merges the rows of one window (fragments of one series, or several
// series) by time, ascending or descending. Rows of different windows never interleave, so
// it holds one window's packed rows at a time, never the readings. The packed rows come
// from a path already in window_start order or a sort of them (a few per series and hour);
// the planner takes the custom scan where it costs less than sorting the readings.
// A row's readings out of time order (the store never writes them so) are ordered when the
// row is read; a reading outside its window (which the bounds would also get wrong) stops
// the scan with an error saying so rather than return rows out of order.
// clang-format off
#include "postgres.h"  // first, as in every PostgreSQL source file
// clang-format on

#include "access/stratnum.h"
#include "catalog/pg_type_d.h"
#include "commands/explain.h"
#include "common/int.h"
#include "executor/executor.h"
#include "executor/tuptable.h"
#include "lib/binaryheap.h"
#include "nodes/extensible.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/optimizer.h"
#include "optimizer/pathnode.h"
#include "optimizer/paths.h"
#include "optimizer/restrictinfo.h"
#include "parser/parsetree.h"
#include "sluice_readings.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/ruleutils.h"
#include "utils/timestamp.h"

#define ORDERED_DECODE_NAME "SluiceOrderedDecode"

// decode_window's arguments: window_start, time_deltas, vals, flags.
#define DECODE_ARGS 4
static const char* const decode_arg_columns[DECODE_ARGS] = {"window_start", "time_deltas", "vals", "flags"};
// decode_window's columns, appended to the packed rows' in the scan tuple.
#define DECODE_COLUMNS 3
static const Oid decode_column_types[DECODE_COLUMNS] = {TIMESTAMPTZOID, FLOAT8OID, INT2OID};

static set_join_pathlist_hook_type prev_join_pathlist_hook = NULL;

// ---- planning ----

// The packed relation's columns `fn` (a decode_window call) reads, in argument order, when
// they are the columns of sluice_telemetry.telemetry_packed that the store writes.
static bool packed_arguments(PlannerInfo* root, const FuncExpr* fn, module_context* ctx, Var** args) {
    if (list_length(fn->args) != DECODE_ARGS) return false;
    for (int i = 0; i < DECODE_ARGS; ++i) {
        Node* arg = (Node*)list_nth(fn->args, i);
        if (!IsA(arg, Var)) return false;
        Var* v = (Var*)arg;
        if (v->varlevelsup != 0 || v->varattno <= 0 || (i > 0 && v->varno != args[0]->varno)) return false;
        const RangeTblEntry* rte = planner_rt_fetch(v->varno, root);
        if (rte->rtekind != RTE_RELATION || rte->relid != ctx->packed_relid) return false;
        const char* name = get_attname(rte->relid, v->varattno, true);
        if (name == NULL || strcmp(name, decode_arg_columns[i]) != 0) return false;
        args[i] = v;
    }
    return true;
}

// The query's first pathkey when it orders by `time_var` with the default NULLS placement
// (the views' times are never NULL: window_start is NOT NULL); *descending its direction.
static PathKey* wanted_time_order(PlannerInfo* root, Var* time_var, bool* descending) {
    if (root->query_pathkeys == NIL) return NULL;
    PathKey* pk = (PathKey*)linitial(root->query_pathkeys);
    const Oid lt = sluice_operator_oid("<", TIMESTAMPTZOID, TIMESTAMPTZOID);
    if (get_op_opfamily_strategy(lt, pk->pk_opfamily) != BTLessStrategyNumber) return NULL;
    if (pk->pk_strategy != BTLessStrategyNumber && pk->pk_strategy != BTGreaterStrategyNumber) return NULL;
    *descending = pk->pk_strategy == BTGreaterStrategyNumber;
    if (pk->pk_nulls_first != *descending) return NULL;
    ListCell* lc;
    foreach (lc, pk->pk_eclass->ec_members) {
        EquivalenceMember* em = (EquivalenceMember*)lfirst(lc);
        if (!em->em_is_child && equal(em->em_expr, time_var)) return pk;
    }
    return NULL;
}

static Plan* plan_ordered_decode(PlannerInfo* root, RelOptInfo* rel, CustomPath* best_path, List* tlist, List* clauses,
                                 List* custom_plans);

static const CustomPathMethods path_methods = {
    .CustomName = ORDERED_DECODE_NAME,
    .PlanCustomPath = plan_ordered_decode,
};

// custom_private of the path: the RestrictInfos it applies, the decode_window relation's
// index, descending (0/1), and the four argument Vars.
static void add_ordered_decode_path(PlannerInfo* root, RelOptInfo* joinrel, RelOptInfo* outerrel, RelOptInfo* innerrel,
                                    JoinType jointype, JoinPathExtraData* extra) {
    module_context* ctx = sluice_planning_context();
    if (ctx == NULL || jointype != JOIN_INNER || joinrel->reloptkind != RELOPT_JOINREL ||
        innerrel->reloptkind != RELOPT_BASEREL || root->query_pathkeys == NIL || !bms_is_empty(joinrel->lateral_relids))
        return;
    const RangeTblEntry* rte = planner_rt_fetch(innerrel->relid, root);
    if (rte->rtekind != RTE_FUNCTION || list_length(rte->functions) != 1 || rte->funcordinality) return;
    Node* call = ((RangeTblFunction*)linitial(rte->functions))->funcexpr;
    sluice_look_up(ctx);
    if (!IsA(call, FuncExpr) || !OidIsValid(ctx->decode_fn) || ((FuncExpr*)call)->funcid != ctx->decode_fn) return;
    Var* args[DECODE_ARGS];
    if (!packed_arguments(root, (FuncExpr*)call, ctx, args) || !bms_is_member((int)args[0]->varno, outerrel->relids))
        return;
    Var* time_var = makeVar(innerrel->relid, 1, TIMESTAMPTZOID, -1, InvalidOid, 0);
    bool descending = false;
    PathKey* time_order = wanted_time_order(root, time_var, &descending);
    if (time_order == NULL) return;
    // What the scan applies itself: decode_window's own conditions and this join's.
    List* restrictions = list_concat_copy(innerrel->baserestrictinfo, extra->restrictlist);
    ListCell* lc;
    foreach (lc, restrictions) {
        if (((RestrictInfo*)lfirst(lc))->pseudoconstant) return;
    }
    Path* packed = outerrel->cheapest_total_path;
    if (packed == NULL || packed->param_info != NULL) return;
    // The packed rows in window_start order: a path in that order, or a sort of the cheapest.
    const Oid ws_op = sluice_operator_oid(descending ? ">" : "<", TIMESTAMPTZOID, TIMESTAMPTZOID);
    List* ws_order = build_expression_pathkey(root, (Expr*)args[0], NULL, ws_op, outerrel->relids, true);
    if (ws_order == NIL) return;
    Path* child = (Path*)create_sort_path(root, outerrel, packed, ws_order, -1.0);
    Path* sorted = get_cheapest_path_for_pathkeys(outerrel->pathlist, ws_order, NULL, TOTAL_COST, false);
    if (sorted != NULL && sorted->total_cost < child->total_cost) child = sorted;

    // Costed as the nested loop it replaces (one decode_window call per packed row) plus
    // emitting each row: cheaper than that loop with a sort of the readings on top.
    const Path* decode = innerrel->cheapest_total_path;
    if (decode == NULL) return;
    CustomPath* cp = makeNode(CustomPath);
    cp->path.pathtype = T_CustomScan;
    cp->path.parent = joinrel;
    cp->path.pathtarget = joinrel->reltarget;
    cp->path.param_info = NULL;
    cp->path.parallel_aware = false;
    cp->path.parallel_safe = false;
    cp->path.parallel_workers = 0;
    cp->path.rows = joinrel->rows;
    cp->path.startup_cost = child->startup_cost + decode->startup_cost;
    cp->path.total_cost = child->total_cost + child->rows * decode->total_cost + joinrel->rows * cpu_tuple_cost;
    cp->path.pathkeys = list_make1(time_order);
    cp->flags = CUSTOMPATH_SUPPORT_PROJECTION;
    cp->custom_paths = list_make1(child);
    List* arg_vars = NIL;
    for (int i = 0; i < DECODE_ARGS; ++i)
        arg_vars = lappend(arg_vars, args[i]);
    cp->custom_private = list_make4(restrictions, makeInteger((int)innerrel->relid), makeBoolean(descending), arg_vars);
    cp->methods = &path_methods;
    add_path(joinrel, (Path*)cp);
}

static void ordered_decode_join_hook(PlannerInfo* root, RelOptInfo* joinrel, RelOptInfo* outerrel, RelOptInfo* innerrel,
                                     JoinType jointype, JoinPathExtraData* extra) {
    if (prev_join_pathlist_hook) prev_join_pathlist_hook(root, joinrel, outerrel, innerrel, jointype, extra);
    add_ordered_decode_path(root, joinrel, outerrel, innerrel, jointype, extra);
}

static Node* create_ordered_decode_state(CustomScan* cscan);

static const CustomScanMethods scan_methods = {
    .CustomName = ORDERED_DECODE_NAME,
    .CreateCustomScanState = create_ordered_decode_state,
};

// The scan tuple: the packed rows' columns (the child plan's, in its order), then
// decode_window's time, value and flags. custom_private of the plan: descending, the
// number of child columns, and the child column of each decode_window argument.
static Plan* plan_ordered_decode(PlannerInfo* root, RelOptInfo* rel, CustomPath* best_path, List* tlist, List* clauses,
                                 List* custom_plans) {
    List* restrictions = (List*)linitial(best_path->custom_private);
    const Index func_relid = (Index)intVal(lsecond(best_path->custom_private));
    const bool descending = boolVal(lthird(best_path->custom_private));
    List* arg_vars = (List*)lfourth(best_path->custom_private);
    Plan* child = (Plan*)linitial(custom_plans);

    List* scan_tlist = NIL;
    int resno = 1;
    ListCell* lc;
    foreach (lc, child->targetlist) {
        TargetEntry* te = (TargetEntry*)lfirst(lc);
        scan_tlist = lappend(scan_tlist, makeTargetEntry((Expr*)copyObject(te->expr), resno++, NULL, false));
    }
    const int n_child = resno - 1;
    for (int c = 0; c < DECODE_COLUMNS; ++c) {
        Var* v = makeVar(func_relid, c + 1, decode_column_types[c], -1, InvalidOid, 0);
        scan_tlist = lappend(scan_tlist, makeTargetEntry((Expr*)v, resno++, NULL, false));
    }
    List* priv = list_make2_int(descending ? 1 : 0, n_child);
    foreach (lc, arg_vars) {
        int found = -1;
        ListCell* tc;
        foreach (tc, child->targetlist) {
            if (equal(((TargetEntry*)lfirst(tc))->expr, lfirst(lc))) {
                found = foreach_current_index(tc);
                break;
            }
        }
        if (found < 0)
            elog(ERROR, "%s: the packed rows' plan does not return a decode_window argument", ORDERED_DECODE_NAME);
        priv = lappend_int(priv, found);
    }

    CustomScan* cs = makeNode(CustomScan);
    cs->scan.plan.targetlist = tlist;
    cs->scan.plan.qual = extract_actual_clauses(restrictions, false);
    cs->scan.scanrelid = 0;
    cs->flags = best_path->flags;
    cs->custom_plans = custom_plans;
    cs->custom_exprs = (List*)copyObject(arg_vars);  // only for EXPLAIN
    cs->custom_private = priv;
    cs->custom_scan_tlist = scan_tlist;
    cs->methods = &scan_methods;
    return &cs->scan.plan;
}

// ---- execution ----

// One packed row of the window being returned.
typedef struct window_row {
    TupleTableSlot* slot;  // the child's row, copied (the slot owns it)
    int64* times;          // each reading's time, in the row's order
    const float8* vals;
    const int16* flags;  // NULL: all 0
    int* order;          // the readings' indexes in time order; NULL when the row is in order
    int n;
    int next;  // readings returned so far
} window_row;

// The index of the reading a row returns `next`-th in the scan's direction.
static inline int reading_at(const window_row* r, int next, bool descending) {
    const int k = descending ? r->n - 1 - next : next;
    return r->order != NULL ? r->order[k] : k;
}

typedef struct ordered_decode_state {
    CustomScanState css;
    bool descending;
    int n_child;
    int arg[DECODE_ARGS];
    PlanState* child;
    MemoryContext window_cxt;  // the current window's decoded arrays, reset per window
    window_row* rows;          // the current window's packed rows
    int n_rows;
    int cap_rows;
    binaryheap* heap;          // indexes of rows with readings left, when more than one
    TupleTableSlot* incoming;  // a child row being read: of the next window once it is not this one's
    bool has_incoming;
    bool started;
} ordered_decode_state;

static void begin_ordered_decode(CustomScanState* node, EState* estate, int eflags);
static TupleTableSlot* exec_ordered_decode(CustomScanState* node);
static void end_ordered_decode(CustomScanState* node);
static void rescan_ordered_decode(CustomScanState* node);
static void explain_ordered_decode(CustomScanState* node, List* ancestors, ExplainState* es);

static const CustomExecMethods exec_methods = {
    .CustomName = ORDERED_DECODE_NAME,
    .BeginCustomScan = begin_ordered_decode,
    .ExecCustomScan = exec_ordered_decode,
    .EndCustomScan = end_ordered_decode,
    .ReScanCustomScan = rescan_ordered_decode,
    .ExplainCustomScan = explain_ordered_decode,
};

static Node* create_ordered_decode_state(CustomScan* cscan) {
    ordered_decode_state* s = (ordered_decode_state*)newNode(sizeof(ordered_decode_state), T_CustomScanState);
    s->css.methods = &exec_methods;
    s->descending = linitial_int(cscan->custom_private) != 0;
    s->n_child = lsecond_int(cscan->custom_private);
    for (int i = 0; i < DECODE_ARGS; ++i)
        s->arg[i] = list_nth_int(cscan->custom_private, 2 + i);
    return (Node*)s;
}

static int compare_next_times(Datum a, Datum b, void* arg) {
    const ordered_decode_state* s = (const ordered_decode_state*)arg;
    const window_row* ra = &s->rows[DatumGetInt32(a)];
    const window_row* rb = &s->rows[DatumGetInt32(b)];
    const int64 ta = ra->times[reading_at(ra, ra->next, s->descending)];
    const int64 tb = rb->times[reading_at(rb, rb->next, s->descending)];
    // binaryheap keeps the greatest first: the earliest time ascending, the latest descending.
    if (ta == tb) return 0;
    return (ta < tb) == !s->descending ? 1 : -1;
}

static void begin_ordered_decode(CustomScanState* node, EState* estate, int eflags) {
    ordered_decode_state* s = (ordered_decode_state*)node;
    CustomScan* cscan = (CustomScan*)node->ss.ps.plan;
    s->child = ExecInitNode((Plan*)linitial(cscan->custom_plans), estate, eflags);
    node->custom_ps = list_make1(s->child);
    s->incoming = MakeSingleTupleTableSlot(ExecGetResultType(s->child), &TTSOpsMinimalTuple);
    s->window_cxt = AllocSetContextCreate(CurrentMemoryContext, "sluice ordered decode", ALLOCSET_DEFAULT_SIZES);
    s->cap_rows = 4;
    s->rows = (window_row*)palloc0(sizeof(window_row) * s->cap_rows);
    for (int i = 0; i < s->cap_rows; ++i)
        s->rows[i].slot = MakeSingleTupleTableSlot(ExecGetResultType(s->child), &TTSOpsMinimalTuple);
    s->heap = binaryheap_allocate(s->cap_rows, compare_next_times, s);
}

static int compare_reading_times(const void* a, const void* b, void* arg) {
    const int64* times = (const int64*)arg;
    const int ia = *(const int*)a, ib = *(const int*)b;
    if (times[ia] != times[ib]) return times[ia] < times[ib] ? -1 : 1;
    return ia < ib ? -1 : ia > ib;
}

// Decodes the row now in rows[i].slot, which must lie in `window_start`'s window.
static void decode_row(ordered_decode_state* s, int i, TimestampTz window_start) {
    window_row* r = &s->rows[i];
    TupleTableSlot* slot = r->slot;
    slot_getallattrs(slot);
    MemoryContext old = MemoryContextSwitchTo(s->window_cxt);
    const int32* d;
    const int* a = s->arg;
    r->n = sluice_packed_values(slot->tts_values[a[1]], slot->tts_isnull[a[1]], slot->tts_values[a[2]],
                                slot->tts_isnull[a[2]], slot->tts_values[a[3]], slot->tts_isnull[a[3]], "decode_window",
                                &d, &r->vals, &r->flags);
    r->next = 0;
    r->order = NULL;
    r->times = r->n > 0 ? (int64*)palloc(sizeof(int64) * r->n) : NULL;
    int64 off = 0;
    bool in_order = true;
    for (int k = 0; k < r->n; ++k) {
        off += d[k];  // checked at every step, so never far outside the window
        if (off < 0 || off >= SLUICE_WINDOW_US)
            ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED),
                            errmsg("a packed row of the window at %s has a reading outside the window",
                                   timestamptz_to_str(window_start)),
                            errdetail("Reading %d is %lld microseconds after window_start; a row's readings lie within "
                                      "10 minutes of it.",
                                      k + 1, (long long)off),
                            errhint("SET sluice_readings.enabled = off reads the views without this module.")));
        if (pg_add_s64_overflow(window_start, off, &r->times[k]) || !IS_VALID_TIMESTAMP(r->times[k]))
            ereport(ERROR, (errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE), errmsg("timestamp out of range")));
        in_order = in_order && (k == 0 || d[k] >= 0);
    }
    if (!in_order) {
        r->order = (int*)palloc(sizeof(int) * r->n);
        for (int k = 0; k < r->n; ++k)
            r->order[k] = k;
        qsort_arg(r->order, r->n, sizeof(int), compare_reading_times, r->times);
    }
    MemoryContextSwitchTo(old);
}

// Moves the child row in `incoming` to rows[n_rows] (swapping slots, no copy).
static int take_incoming(ordered_decode_state* s) {
    if (s->n_rows == s->cap_rows) {
        const int cap = s->cap_rows * 2;
        s->rows = (window_row*)repalloc(s->rows, sizeof(window_row) * cap);
        for (int i = s->cap_rows; i < cap; ++i) {
            memset(&s->rows[i], 0, sizeof(window_row));
            s->rows[i].slot = MakeSingleTupleTableSlot(ExecGetResultType(s->child), &TTSOpsMinimalTuple);
        }
        binaryheap_free(s->heap);
        s->heap = binaryheap_allocate(cap, compare_next_times, s);
        s->cap_rows = cap;
    }
    const int i = s->n_rows++;
    TupleTableSlot* free_slot = s->rows[i].slot;
    s->rows[i].slot = s->incoming;
    s->incoming = free_slot;
    s->has_incoming = false;
    return i;
}

// Reads the next window's packed rows (all with one window_start); false at the end.
static bool load_window(ordered_decode_state* s) {
    for (int i = 0; i < s->n_rows; ++i)
        ExecClearTuple(s->rows[i].slot);
    s->n_rows = 0;
    MemoryContextReset(s->window_cxt);
    binaryheap_reset(s->heap);
    TimestampTz window_start = 0;
    for (;;) {
        if (!s->has_incoming) {
            TupleTableSlot* in = ExecProcNode(s->child);
            if (TupIsNull(in)) break;
            ExecCopySlot(s->incoming, in);
            s->has_incoming = true;
        }
        bool ws_null = false;
        const TimestampTz ws = DatumGetTimestampTz(slot_getattr(s->incoming, s->arg[0] + 1, &ws_null));
        if (ws_null || TIMESTAMP_NOT_FINITE(ws))
            ereport(ERROR, (errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
                            errmsg("%s: a packed row's window_start is NULL or infinite", ORDERED_DECODE_NAME)));
        if (s->n_rows > 0 && ws != window_start) {
            if (s->descending ? ws > window_start : ws < window_start)
                elog(ERROR, "%s: packed rows arrive out of window_start order", ORDERED_DECODE_NAME);
            break;
        }
        window_start = ws;
        decode_row(s, take_incoming(s), ws);
    }
    if (s->n_rows > 1) {
        for (int i = 0; i < s->n_rows; ++i) {
            if (s->rows[i].n > 0) binaryheap_add_unordered(s->heap, Int32GetDatum(i));
        }
        binaryheap_build(s->heap);
    }
    return s->n_rows > 0;
}

// The packed row whose reading comes next in the current window, or -1.
static int next_row(ordered_decode_state* s) {
    if (s->n_rows == 1) return s->rows[0].next < s->rows[0].n ? 0 : -1;
    return binaryheap_empty(s->heap) ? -1 : DatumGetInt32(binaryheap_first(s->heap));
}

static TupleTableSlot* next_reading(ScanState* ss) {
    ordered_decode_state* s = (ordered_decode_state*)ss;
    TupleTableSlot* out = ss->ss_ScanTupleSlot;
    int i;
    while ((i = next_row(s)) < 0) {
        if (!load_window(s)) return ExecClearTuple(out);
    }
    window_row* r = &s->rows[i];
    const int k = reading_at(r, r->next, s->descending);
    ExecClearTuple(out);
    memcpy(out->tts_values, r->slot->tts_values, sizeof(Datum) * s->n_child);
    memcpy(out->tts_isnull, r->slot->tts_isnull, sizeof(bool) * s->n_child);
    out->tts_values[s->n_child] = TimestampTzGetDatum(r->times[k]);
    out->tts_values[s->n_child + 1] = Float8GetDatum(r->vals[k]);
    out->tts_values[s->n_child + 2] = Int16GetDatum(r->flags != NULL ? r->flags[k] : 0);
    memset(out->tts_isnull + s->n_child, 0, DECODE_COLUMNS);
    ++r->next;
    if (s->n_rows > 1) {
        if (r->next < r->n) {
            binaryheap_replace_first(s->heap, Int32GetDatum(i));
        } else {
            binaryheap_remove_first(s->heap);
        }
    }
    return ExecStoreVirtualTuple(out);
}

static bool recheck_reading(ScanState* ss, TupleTableSlot* slot) {
    return true;
}

static TupleTableSlot* exec_ordered_decode(CustomScanState* node) {
    return ExecScan(&node->ss, next_reading, recheck_reading);
}

static void forget_window(ordered_decode_state* s) {
    for (int i = 0; i < s->n_rows; ++i)
        ExecClearTuple(s->rows[i].slot);
    s->n_rows = 0;
    ExecClearTuple(s->incoming);
    s->has_incoming = false;
    binaryheap_reset(s->heap);
    MemoryContextReset(s->window_cxt);
}

static void end_ordered_decode(CustomScanState* node) {
    ordered_decode_state* s = (ordered_decode_state*)node;
    forget_window(s);
    for (int i = 0; i < s->cap_rows; ++i)
        ExecDropSingleTupleTableSlot(s->rows[i].slot);
    ExecDropSingleTupleTableSlot(s->incoming);
    ExecEndNode(s->child);
}

static void rescan_ordered_decode(CustomScanState* node) {
    ordered_decode_state* s = (ordered_decode_state*)node;
    forget_window(s);
    if (node->ss.ps.chgParam != NULL) UpdateChangedParamSet(s->child, node->ss.ps.chgParam);
    // With changed parameters the child rescans when next read.
    if (s->child->chgParam == NULL) ExecReScan(s->child);
}

static void explain_ordered_decode(CustomScanState* node, List* ancestors, ExplainState* es) {
    const ordered_decode_state* s = (const ordered_decode_state*)node;
    const CustomScan* cscan = (const CustomScan*)node->ss.ps.plan;
    List* context = set_deparse_context_plan(es->deparse_cxt, node->ss.ps.plan, ancestors);
    StringInfoData call;
    initStringInfo(&call);
    appendStringInfoString(&call, "sluice_telemetry.decode_window(");
    ListCell* lc;
    foreach (lc, cscan->custom_exprs) {
        if (foreach_current_index(lc) > 0) appendStringInfoString(&call, ", ");
        appendStringInfoString(&call, deparse_expression((Node*)lfirst(lc), context, true, false));
    }
    appendStringInfoChar(&call, ')');
    ExplainPropertyText("Decodes", call.data, es);
    ExplainPropertyText("Order", s->descending ? "time DESC" : "time", es);
}

void sluice_ordered_decode_init(void) {
    RegisterCustomScanMethods(&scan_methods);
    prev_join_pathlist_hook = set_join_pathlist_hook;
    set_join_pathlist_hook = ordered_decode_join_hook;
}
