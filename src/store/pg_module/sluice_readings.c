// SPDX-License-Identifier: Apache-2.0
//
// sluice_readings: a PostgreSQL 15 module (loaded with shared_preload_libraries) that lets
// a plain time predicate on Sluice's reading views prune stored windows.
//
// Readings are stored packed, one row per (device, metric, 10-minute window) with
// window_start = floor(time, 10 min) (docs/storage.md). The views sluice_telemetry.readings
// and sluice_telemetry.telemetry compute each reading's time as
// `p.window_start + offset` with 0 <= offset < 10 minutes, so PostgreSQL cannot derive a
// bound on window_start (the partition key and index column) from `WHERE time >= $from AND
// time < $to` and reads every partition. This module's planner hook rewrites the query
// before planning: for every comparison `time OP expr` (OP one of < <= = >= >, expr a
// timestamptz, date or timestamp free of this level's columns, volatile functions and
// sublinks) that must be true for a view row to reach the result, it adds to the view's
// own WHERE the implied bound on window_start:
//
//   time >= e, time > e   =>  window_start > e - 10 min
//   time <= e             =>  window_start <= e
//   time < e              =>  window_start < e
//   time = e              =>  both
//
// (a date or timestamp e is converted as the cross-type comparison converts it, in the
// session's TimeZone). Comparisons combine through AND and OR: `(A AND B) OR C` implies
// `(bound(A) AND bound(B)) OR bound(C)` when every arm bounds the view, and nothing
// otherwise. Where a condition must hold: the WHERE clause; the ON clause of an inner join;
// the ON clause of a LEFT (RIGHT) join for views on its right (left), nullable side only
// (the preserved side's rows appear whatever ON says; FULL joins push nothing). The view may
// be referenced directly or through subqueries and single-use CTEs that only select and
// join (no grouping, DISTINCT, LIMIT, window functions, set operations or set-returning
// target lists), whose column is a plain reference to the view's time.
//
// The added conditions are implied by the user's, so results never change; partition
// pruning (native), chunk exclusion (TimescaleDB) and the (device, metric, window_start)
// btree then read only the windows in range. A view matches when the targeted column is
// named "time" and its expression is `<window_start of sluice_telemetry.telemetry_packed>
// + ...`. The window width here, store/packing.cc and the settings row window_us must
// change together. `SET sluice_readings.enabled = off` turns the rewrite off (tests compare
// results with and without it).
//
// After adding the bounds, the hook lets grouped aggregates over such a view read per-bucket
// partials instead of a row per reading (bucket_partials.c, sluice_bucket_window), and
// the views that still read every reading decode their times in C (decode_window.c) and,
// where the query wants them in time order, in that order without a sort (ordered_decode.c).
//
// It also provides sluice_unpack_window, the C body of sluice_telemetry.unpack_window (the
// decoding of one packed row into readings, schema.cc), which the schema uses instead of
// the SQL body when it can create it.
// clang-format off
#include "postgres.h"  // first, as in every PostgreSQL source file
// clang-format on

#include "sluice_readings.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type_d.h"
#include "fmgr.h"
#include "funcapi.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "nodes/pg_list.h"
#include "optimizer/optimizer.h"
#include "optimizer/planner.h"
#include "parser/parse_func.h"
#include "parser/parsetree.h"
#include "rewrite/rewriteManip.h"
#include "utils/array.h"
#include "utils/date.h"
#include "utils/fmgroids.h"
#include "utils/fmgrprotos.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

PG_MODULE_MAGIC;

void _PG_init(void);  // NOLINT(bugprone-reserved-identifier): the name PostgreSQL calls

// date and timestamp bounds are converted only this far inside timestamptz's range, so that
// neither the conversion (at any UTC offset) nor subtracting a window can overflow.
#define SLUICE_MARGIN_DAYS 30

static planner_hook_type prev_planner_hook = NULL;
static bool enabled = true;
static module_context* planning_context = NULL;

module_context* sluice_planning_context(void) {
    return planning_context;
}

void sluice_look_up(module_context* ctx) {
    if (ctx->looked_up) return;
    ctx->looked_up = true;
    Oid ns = get_namespace_oid("sluice_telemetry", true);
    ctx->packed_relid = OidIsValid(ns) ? get_relname_relid("telemetry_packed", ns) : InvalidOid;
    ctx->unpack_fn = ctx->bucket_fn = ctx->decode_fn = InvalidOid;
    if (!OidIsValid(ns)) return;
    const Oid unpack_args[] = {INT4ARRAYOID, FLOAT8ARRAYOID, INT2ARRAYOID};
    ctx->unpack_fn =
        LookupFuncName(list_make2(makeString("sluice_telemetry"), makeString("unpack_window")), 3, unpack_args, true);
    const Oid bucket_args[] = {TIMESTAMPTZOID, INT4ARRAYOID, FLOAT8ARRAYOID, INT8OID, TIMESTAMPTZOID,
                               TIMESTAMPTZOID, BOOLOID,      TIMESTAMPTZOID, BOOLOID};
    ctx->bucket_fn = LookupFuncName(list_make2(makeString("sluice_telemetry"), makeString("bucket_window")),
                                    lengthof(bucket_args), bucket_args, true);
    const Oid decode_args[] = {TIMESTAMPTZOID, INT4ARRAYOID, FLOAT8ARRAYOID, INT2ARRAYOID};
    ctx->decode_fn = LookupFuncName(list_make2(makeString("sluice_telemetry"), makeString("decode_window")),
                                    lengthof(decode_args), decode_args, true);
}

// The five comparisons of one pair of types, e.g. F_TIMESTAMPTZ_LT_DATE for (TIMESTAMPTZ, DATE).
// clang-format off
#define SLUICE_COMPARISONS(L, R)                                                            \
    {F_##L##_LT_##R, -1, true}, {F_##L##_LE_##R, -1, false}, {F_##L##_EQ_##R, 0, false}, \
    {F_##L##_GE_##R, 1, false}, {F_##L##_GT_##R, 1, true}
// clang-format on

static const comparison comparisons[] = {
    {F_TIMESTAMPTZ_LT, -1, true},
    {F_TIMESTAMPTZ_LE, -1, false},
    {F_TIMESTAMPTZ_EQ, 0, false},
    {F_TIMESTAMPTZ_GE, 1, false},
    {F_TIMESTAMPTZ_GT, 1, true},
    SLUICE_COMPARISONS(TIMESTAMPTZ, DATE),
    SLUICE_COMPARISONS(TIMESTAMPTZ, TIMESTAMP),
    SLUICE_COMPARISONS(DATE, TIMESTAMPTZ),
    SLUICE_COMPARISONS(TIMESTAMP, TIMESTAMPTZ),
};

const comparison* sluice_find_comparison(Oid fn) {
    for (size_t i = 0; i < lengthof(comparisons); ++i) {
        if (comparisons[i].fn == fn) return &comparisons[i];
    }
    return NULL;
}

Oid sluice_operator_oid(const char* name, Oid left, Oid right) {
    return OpernameGetOprid(list_make2(makeString("pg_catalog"), makeString(pstrdup(name))), left, right);
}

static Expr* make_op(const char* name, Oid type, Expr* l, Expr* r) {
    return make_opclause(sluice_operator_oid(name, type, type), BOOLOID, false, l, r, InvalidOid, InvalidOid);
}

static Const* timestamptz_const(TimestampTz t) {
    return makeConst(TIMESTAMPTZOID, -1, InvalidOid, sizeof(TimestampTz), TimestampTzGetDatum(t), false,
                     FLOAT8PASSBYVAL);
}

// e - 10 minutes: folded when e is a non-null constant, else an expression (stable:
// PostgreSQL prunes with it at executor start-up).
static Expr* minus_window(Expr* e) {
    if (IsA(e, Const) && !((Const*)e)->constisnull) {
        TimestampTz t = DatumGetTimestampTz(((Const*)e)->constvalue);
        if (TIMESTAMP_NOT_FINITE(t) || !IS_VALID_TIMESTAMP(t - SLUICE_WINDOW_US)) return (Expr*)copyObject(e);
        return (Expr*)timestamptz_const(t - SLUICE_WINDOW_US);
    }
    Interval* iv = (Interval*)palloc0(sizeof(Interval));
    iv->time = SLUICE_WINDOW_US;
    Const* c = makeConst(INTERVALOID, -1, InvalidOid, sizeof(Interval), PointerGetDatum(iv), false, false);
    Oid op = sluice_operator_oid("-", TIMESTAMPTZOID, INTERVALOID);
    return make_opclause(op, TIMESTAMPTZOID, false, e, (Expr*)c, InvalidOid, InvalidOid);
}

// The timestamptz a cross-type comparison converts the date or timestamp `e` to (the
// session's TimeZone decides, so it is never folded at plan time: a cached plan may run
// under another TimeZone). Out of the safe range the conversion would fail where the
// comparison does not: a constant there gives NULL (no bound), an expression the weakest
// bound (-infinity for a lower bound, infinity for an upper one).
static Expr* as_timestamptz(Expr* e, bool lower) {
    Oid type = exprType((Node*)e);
    if (type == TIMESTAMPTZOID) return e;
    Const *lo, *hi;
    Oid cast;
    if (type == DATEOID) {
        const DateADT first = DATETIME_MIN_JULIAN - POSTGRES_EPOCH_JDATE + SLUICE_MARGIN_DAYS;
        const DateADT last = TIMESTAMP_END_JULIAN - POSTGRES_EPOCH_JDATE - SLUICE_MARGIN_DAYS;
        lo = makeConst(DATEOID, -1, InvalidOid, sizeof(DateADT), DateADTGetDatum(first), false, true);
        hi = makeConst(DATEOID, -1, InvalidOid, sizeof(DateADT), DateADTGetDatum(last), false, true);
        cast = F_TIMESTAMPTZ_DATE;
    } else if (type == TIMESTAMPOID) {
        const Timestamp margin = SLUICE_MARGIN_DAYS * USECS_PER_DAY;
        lo = makeConst(TIMESTAMPOID, -1, InvalidOid, sizeof(Timestamp), TimestampGetDatum(MIN_TIMESTAMP + margin),
                       false, FLOAT8PASSBYVAL);
        hi = makeConst(TIMESTAMPOID, -1, InvalidOid, sizeof(Timestamp), TimestampGetDatum(END_TIMESTAMP - margin),
                       false, FLOAT8PASSBYVAL);
        cast = F_TIMESTAMPTZ_TIMESTAMP;
    } else {
        return NULL;
    }
    Expr* converted =
        (Expr*)makeFuncExpr(cast, TIMESTAMPTZOID, list_make1(e), InvalidOid, InvalidOid, COERCE_EXPLICIT_CAST);
    if (IsA(e, Const)) {
        const Const* c = (const Const*)e;
        if (c->constisnull) return NULL;
        const int64 v = type == DATEOID ? (int64)DatumGetDateADT(c->constvalue) : DatumGetTimestamp(c->constvalue);
        const int64 first =
            type == DATEOID ? (int64)DatumGetDateADT(lo->constvalue) : DatumGetTimestamp(lo->constvalue);
        const int64 last = type == DATEOID ? (int64)DatumGetDateADT(hi->constvalue) : DatumGetTimestamp(hi->constvalue);
        return v >= first && v <= last ? converted : NULL;
    }
    CaseExpr* in_range = makeNode(CaseExpr);
    in_range->casetype = TIMESTAMPTZOID;
    CaseWhen* when = makeNode(CaseWhen);
    when->expr = make_andclause(list_make2(make_op(">=", type, (Expr*)copyObject(e), (Expr*)lo),
                                           make_op("<=", type, (Expr*)copyObject(e), (Expr*)hi)));
    when->result = converted;
    in_range->args = list_make1(when);
    in_range->defresult = (Expr*)timestamptz_const(lower ? DT_NOBEGIN : DT_NOEND);
    in_range->location = -1;
    return (Expr*)in_range;
}

// now(), transaction_timestamp(), CURRENT_TIMESTAMP (the transaction's start) or
// statement_timestamp() (later still): at least the transaction's start.
static bool is_transaction_now(const Expr* e) {
    if (IsA(e, FuncExpr)) {
        const Oid fn = ((const FuncExpr*)e)->funcid;
        return fn == F_NOW || fn == F_TRANSACTION_TIMESTAMP || fn == F_STATEMENT_TIMESTAMP;
    }
    return IsA(e, SQLValueFunction) && ((const SQLValueFunction*)e)->op == SVFOP_CURRENT_TIMESTAMP;
}

// A constant as weak as the timestamptz bound `e` at every execution of the plan, for
// pruning while planning (PostgreSQL prunes partitions with stable expressions only at
// executor start-up, after planning every partition: 6-8 ms with 99 daily partitions where
// a constant takes 0.3). Taken: a constant, now() (or CURRENT_TIMESTAMP, ...) for lower
// bounds only, and either of them plus or minus a constant interval. now() is read at
// planning: a plan executed later sees a later now(), so as a lower bound it only gets
// weaker (time moving forward is assumed, as TimescaleDB's plan-time exclusion does). An
// interval with days or months is applied in the session's TimeZone, which may differ at
// execution: days move by at most the zone's offset changes (2 days of slack), months also
// by their lengths (another 7). The exact bound is kept for executor start-up.
static bool plan_time_bound(Expr* e, bool lower, TimestampTz* out) {
    Interval* iv = NULL;
    bool minus = false;
    if (IsA(e, OpExpr)) {
        OpExpr* op = (OpExpr*)e;
        if (list_length(op->args) != 2 ||
            (op->opfuncid != F_TIMESTAMPTZ_PL_INTERVAL && op->opfuncid != F_TIMESTAMPTZ_MI_INTERVAL))
            return false;
        const Const* c = (const Const*)lsecond(op->args);
        if (!IsA(c, Const) || c->constisnull) return false;
        iv = DatumGetIntervalP(c->constvalue);
        minus = op->opfuncid == F_TIMESTAMPTZ_MI_INTERVAL;
        e = (Expr*)linitial(op->args);
    }
    TimestampTz base;
    if (IsA(e, Const) && !((Const*)e)->constisnull && ((Const*)e)->consttype == TIMESTAMPTZOID) {
        base = DatumGetTimestampTz(((Const*)e)->constvalue);
    } else if (lower && is_transaction_now(e)) {
        base = GetCurrentTransactionStartTimestamp();
    } else {
        return false;
    }
    if (TIMESTAMP_NOT_FINITE(base)) return false;
    if (iv == NULL) {
        *out = base;
        return true;
    }
    // Only well inside timestamptz's range (years 0-290000 roughly) and for intervals under
    // 1,000 years: nothing here can overflow or raise an error while planning.
    const int64 thousand_years = 1000 * 366 * USECS_PER_DAY;
    if (base < MIN_TIMESTAMP + 3 * thousand_years || base > END_TIMESTAMP - 3 * thousand_years || iv->month > 12000 ||
        iv->month < -12000 || iv->day > 366000 || iv->day < -366000 || iv->time > thousand_years ||
        iv->time < -thousand_years)
        return false;
    const int64 slack =
        (iv->day != 0 || iv->month != 0 ? 2 * USECS_PER_DAY : 0) + (iv->month != 0 ? 7 * USECS_PER_DAY : 0);
    const Datum moved = DirectFunctionCall2(minus ? timestamptz_mi_interval : timestamptz_pl_interval,
                                            TimestampTzGetDatum(base), IntervalPGetDatum(iv));
    *out = DatumGetTimestampTz(moved) + (lower ? -slack : slack);
    return true;
}

// A bound on one of the relations such a query reads that its output must satisfy may be
// applied to that relation.
bool sluice_only_selects_and_joins(const Query* s) {
    return s->commandType == CMD_SELECT && s->setOperations == NULL && s->groupClause == NIL &&
           s->groupingSets == NIL && !s->hasAggs && !s->hasWindowFuncs && s->havingQual == NULL &&
           s->distinctClause == NIL && s->limitCount == NULL && s->limitOffset == NULL && !s->hasTargetSRFs &&
           s->jointree != NULL;
}

// The query of a FROM item that is a subquery, or a CTE of this level used only there and
// not materialized (so it is that reference's alone), else NULL.
static Query* subquery_of(Query* q, RangeTblEntry* rte) {
    if (rte->rtekind == RTE_SUBQUERY) return rte->subquery;
    if (rte->rtekind != RTE_CTE || rte->ctelevelsup != 0 || rte->self_reference) return NULL;
    ListCell* lc;
    foreach (lc, q->cteList) {
        CommonTableExpr* cte = (CommonTableExpr*)lfirst(lc);
        if (strcmp(cte->ctename, rte->ctename) != 0) continue;
        if (cte->cterefcount != 1 || cte->cterecursive || cte->ctematerialized == CTEMaterializeAlways ||
            !IsA(cte->ctequery, Query))
            return NULL;
        return (Query*)cte->ctequery;
    }
    return NULL;
}

// Where `var` (a column of q's FROM item) is the time column of a packed-readings view,
// directly or through subqueries and CTEs that pass it on unchanged: the view's
// window_start Var, the view's query (*view) and how many levels below q it is (*depth).
static Var* window_start_of(Query* q, Var* var, Query** view, int* depth, module_context* ctx) {
    for (int levels = 1;; ++levels) {
        if (var->varlevelsup != 0 || var->varattno <= 0 || var->vartype != TIMESTAMPTZOID) return NULL;
        Query* s = subquery_of(q, rt_fetch(var->varno, q->rtable));
        if (s == NULL || !sluice_only_selects_and_joins(s)) return NULL;
        TargetEntry* tle = get_tle_by_resno(s->targetList, var->varattno);
        if (tle == NULL || tle->resjunk) return NULL;
        if (IsA(tle->expr, Var)) {
            q = s;
            var = (Var*)tle->expr;
            continue;
        }
        if (tle->resname == NULL || strcmp(tle->resname, "time") != 0 || !IsA(tle->expr, OpExpr)) return NULL;
        OpExpr* plus = (OpExpr*)tle->expr;
        if (list_length(plus->args) != 2 || !IsA(linitial(plus->args), Var)) return NULL;
        if (plus->opfuncid != F_TIMESTAMPTZ_PL_INTERVAL && get_opcode(plus->opno) != F_TIMESTAMPTZ_PL_INTERVAL)
            return NULL;
        Var* ws = (Var*)linitial(plus->args);
        if (!sluice_is_window_start(s, ws, ctx)) return NULL;
        *view = s;
        *depth = levels;
        return ws;
    }
}

bool sluice_is_window_start(const Query* s, const Var* ws, module_context* ctx) {
    if (ws->varlevelsup != 0 || ws->varattno <= 0) return false;
    const RangeTblEntry* prte = rt_fetch(ws->varno, s->rtable);
    sluice_look_up(ctx);
    if (prte->rtekind != RTE_RELATION || !OidIsValid(ctx->packed_relid) || prte->relid != ctx->packed_relid)
        return false;
    const char* attname = get_attname(prte->relid, ws->varattno, true);
    return attname != NULL && strcmp(attname, "window_start") == 0;
}

// A comparison of a view's time with a bound, resolved: the view, its window_start and the
// bound as seen from the view's level.
typedef struct time_comparison {
    Query* view;
    Var* ws;
    const comparison* cmp;
    bool var_on_right;
    Expr* bound;  // copied, outer references adjusted to the view's level
} time_comparison;

static bool resolve_comparison(Query* q, Node* clause, const Bitmapset* allowed, time_comparison* out,
                               module_context* ctx) {
    if (!IsA(clause, OpExpr)) return false;
    OpExpr* op = (OpExpr*)clause;
    if (list_length(op->args) != 2) return false;
    const comparison* cmp = sluice_find_comparison(get_opcode(op->opno));
    if (cmp == NULL) return false;
    Node* l = (Node*)linitial(op->args);
    Node* r = (Node*)lsecond(op->args);
    const bool var_on_right = !IsA(l, Var);
    if (var_on_right && !IsA(r, Var)) return false;
    Var* var = (Var*)(var_on_right ? r : l);
    Node* bound = var_on_right ? l : r;
    if (var->varlevelsup != 0 || !bms_is_member((int)var->varno, allowed)) return false;
    if (contain_vars_of_level(bound, 0) || contain_volatile_functions(bound) || checkExprHasSubLink(bound))
        return false;
    int depth = 0;
    Var* ws = window_start_of(q, var, &out->view, &depth, ctx);
    if (ws == NULL) return false;
    out->ws = ws;
    out->cmp = cmp;
    out->var_on_right = var_on_right;
    // Moved `depth` query levels down: references to outer queries get as many more levels.
    out->bound = (Expr*)copyObject(bound);
    IncrementVarSublevelsUp((Node*)out->bound, depth, 0);
    return true;
}

// The bound on `view`'s window_start that `clause` being true implies, or NULL.
static Expr* implied_bound(Query* q, Node* clause, Query* view, const Bitmapset* allowed, module_context* ctx) {
    if (IsA(clause, BoolExpr) && ((BoolExpr*)clause)->boolop != NOT_EXPR) {
        const bool is_and = ((BoolExpr*)clause)->boolop == AND_EXPR;
        List* bounds = NIL;
        ListCell* lc;
        foreach (lc, ((BoolExpr*)clause)->args) {
            Expr* b = implied_bound(q, (Node*)lfirst(lc), view, allowed, ctx);
            if (b != NULL) {
                bounds = lappend(bounds, b);
            } else if (!is_and) {
                return NULL;  // an arm of the OR that does not bound the view
            }
        }
        if (bounds == NIL) return NULL;
        if (list_length(bounds) == 1) return (Expr*)linitial(bounds);
        return is_and ? make_andclause(bounds) : make_orclause(bounds);
    }
    time_comparison tc;
    if (!resolve_comparison(q, clause, allowed, &tc, ctx) || tc.view != view) return NULL;
    const int kind = tc.var_on_right ? -tc.cmp->kind : tc.cmp->kind;  // e < time  <=>  time > e
    List* bounds = NIL;
    TimestampTz planned;
    if (kind >= 0) {
        Expr* e = as_timestamptz(tc.bound, true);
        if (e != NULL)
            bounds = lappend(bounds, make_op(">", TIMESTAMPTZOID, (Expr*)copyObject(tc.ws), minus_window(e)));
        if (e != NULL && !IsA(e, Const) && plan_time_bound(e, true, &planned))
            bounds = lappend(bounds, make_op(">", TIMESTAMPTZOID, (Expr*)copyObject(tc.ws),
                                             minus_window((Expr*)timestamptz_const(planned))));
    }
    if (kind <= 0) {
        Expr* e = as_timestamptz((Expr*)copyObject(tc.bound), false);
        if (e != NULL) {
            const char* op = kind < 0 && tc.cmp->strict ? "<" : "<=";
            bounds = lappend(bounds, make_op(op, TIMESTAMPTZOID, (Expr*)copyObject(tc.ws), e));
        }
        if (e != NULL && !IsA(e, Const) && plan_time_bound(e, false, &planned))
            bounds = lappend(
                bounds, make_op("<=", TIMESTAMPTZOID, (Expr*)copyObject(tc.ws), (Expr*)timestamptz_const(planned)));
    }
    if (bounds == NIL) return NULL;
    return list_length(bounds) == 1 ? (Expr*)linitial(bounds) : make_andclause(bounds);
}

// The views that comparisons in `clause`'s AND/OR tree target.
static List* targeted_views(Query* q, Node* clause, const Bitmapset* allowed, List* views, module_context* ctx) {
    if (IsA(clause, BoolExpr) && ((BoolExpr*)clause)->boolop != NOT_EXPR) {
        ListCell* lc;
        foreach (lc, ((BoolExpr*)clause)->args)
            views = targeted_views(q, (Node*)lfirst(lc), allowed, views, ctx);
        return views;
    }
    time_comparison tc;
    if (resolve_comparison(q, clause, allowed, &tc, ctx)) views = list_append_unique_ptr(views, tc.view);
    return views;
}

// Adds to each view the bound that `quals` implies for it; `allowed` are the range table
// indexes of the FROM items whose rows must satisfy quals to reach the result.
static void push_quals(Query* q, Node* quals, const Bitmapset* allowed, module_context* ctx) {
    if (quals == NULL || bms_is_empty(allowed)) return;
    if (IsA(quals, List)) quals = (Node*)make_andclause((List*)quals);
    ListCell* lc;
    foreach (lc, targeted_views(q, quals, allowed, NIL, ctx)) {
        Query* view = (Query*)lfirst(lc);
        Expr* bound = implied_bound(q, quals, view, allowed, ctx);
        if (bound != NULL) view->jointree->quals = make_and_qual(view->jointree->quals, (Node*)bound);
    }
}

// Range table indexes of the FROM items in a join tree.
static Bitmapset* items_of(Node* jt) {
    if (IsA(jt, RangeTblRef)) return bms_make_singleton(((RangeTblRef*)jt)->rtindex);
    if (IsA(jt, JoinExpr)) return bms_union(items_of(((JoinExpr*)jt)->larg), items_of(((JoinExpr*)jt)->rarg));
    Bitmapset* all = NULL;
    ListCell* lc;
    foreach (lc, ((FromExpr*)jt)->fromlist)
        all = bms_union(all, items_of((Node*)lfirst(lc)));
    return all;
}

// WHERE applies to every row; an ON clause to the rows of both sides of an inner join and
// to those of the nullable side of an outer join only.
static void push_jointree(Query* q, Node* jt, module_context* ctx) {
    if (IsA(jt, FromExpr)) {
        push_quals(q, ((FromExpr*)jt)->quals, items_of(jt), ctx);
        ListCell* lc;
        foreach (lc, ((FromExpr*)jt)->fromlist)
            push_jointree(q, (Node*)lfirst(lc), ctx);
    } else if (IsA(jt, JoinExpr)) {
        JoinExpr* j = (JoinExpr*)jt;
        const Bitmapset* allowed = j->jointype == JOIN_INNER   ? items_of(jt)
                                   : j->jointype == JOIN_LEFT  ? items_of(j->rarg)
                                   : j->jointype == JOIN_RIGHT ? items_of(j->larg)
                                                               : NULL;
        push_quals(q, j->quals, allowed, ctx);
        push_jointree(q, j->larg, ctx);
        push_jointree(q, j->rarg, ctx);
    }
}

static bool push_walker(Node* node, void* context) {
    if (node == NULL) return false;
    if (IsA(node, Query)) {
        Query* q = (Query*)node;
        if (q->commandType == CMD_SELECT && q->jointree != NULL) push_jointree(q, (Node*)q->jointree, context);
        return query_tree_walker(q, push_walker, context, 0);
    }
    return expression_tree_walker(node, push_walker, context);
}

// Every query with a readings view that the partials left as it was.
static bool decoder_walker(Node* node, void* context) {
    if (node == NULL) return false;
    if (IsA(node, Query)) {
        Query* q = (Query*)node;
        bool r = query_tree_walker(q, decoder_walker, context, 0);
        sluice_use_time_decoder(q, context);
        return r;
    }
    return expression_tree_walker(node, decoder_walker, context);
}

// Every grouped query that reads a readings view, after the bounds were added.
static bool partials_walker(Node* node, void* context) {
    if (node == NULL) return false;
    if (IsA(node, Query)) {
        Query* q = (Query*)node;
        bool r = query_tree_walker(q, partials_walker, context, 0);
        sluice_use_bucket_partials(q, context);
        return r;
    }
    return expression_tree_walker(node, partials_walker, context);
}

static PlannedStmt* sluice_planner(Query* parse, const char* query_string, int cursor_options,
                                   ParamListInfo bound_params) {
    module_context ctx = {InvalidOid, InvalidOid, InvalidOid, InvalidOid, false};
    if (enabled) {
        push_walker((Node*)parse, &ctx);
        partials_walker((Node*)parse, &ctx);
        decoder_walker((Node*)parse, &ctx);
    }
    // Planning may plan other statements (functions run while folding constants): each
    // sees its own context, and this one's is restored however planning ends.
    module_context* outer = planning_context;
    planning_context = enabled ? &ctx : NULL;
    PlannedStmt* planned = NULL;
    PG_TRY();
    {
        planned = prev_planner_hook ? prev_planner_hook(parse, query_string, cursor_options, bound_params)
                                    : standard_planner(parse, query_string, cursor_options, bound_params);
    }
    PG_FINALLY();
    { planning_context = outer; }
    PG_END_TRY();
    return planned;
}

int sluice_array_length(ArrayType* a, const char* fn, const char* what) {
    if (ARR_NDIM(a) == 0) return 0;
    if (ARR_NDIM(a) != 1)
        ereport(ERROR, (errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
                        errmsg("%s: %s has %d dimensions, expected 1", fn, what, ARR_NDIM(a))));
    if (ARR_HASNULL(a) && array_contains_nulls(a))
        ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("%s: %s contains NULL", fn, what)));
    return ARR_DIMS(a)[0];
}

int sluice_packed_values(Datum deltas_datum, bool deltas_null, Datum vals_datum, bool vals_null, Datum flags_datum,
                         bool flags_null, const char* fn, const int32** d, const float8** v, const int16** f) {
    *d = NULL;
    *v = NULL;
    *f = NULL;
    if (deltas_null || vals_null) return 0;
    ArrayType* deltas = DatumGetArrayTypeP(deltas_datum);
    ArrayType* vals = DatumGetArrayTypeP(vals_datum);
    ArrayType* flags = flags_null ? NULL : DatumGetArrayTypeP(flags_datum);
    const int n = sluice_array_length(deltas, fn, "time_deltas");
    const int n_vals = sluice_array_length(vals, fn, "vals");
    const int n_flags = flags != NULL ? sluice_array_length(flags, fn, "flags") : n;
    if (n_vals != n || n_flags != n)
        ereport(ERROR, (errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
                        errmsg("%s: time_deltas, vals and flags have different lengths (%d, %d, %d)", fn, n, n_vals,
                               n_flags)));
    if (n == 0) return 0;
    *d = (const int32*)ARR_DATA_PTR(deltas);
    *v = (const float8*)ARR_DATA_PTR(vals);
    *f = flags != NULL ? (const int16*)ARR_DATA_PTR(flags) : NULL;
    return n;
}

int sluice_packed_arrays(FunctionCallInfo fcinfo, int first, const char* fn, const int32** d, const float8** v,
                         const int16** f) {
    return sluice_packed_values(PG_GETARG_DATUM(first), PG_ARGISNULL(first), PG_GETARG_DATUM(first + 1),
                                PG_ARGISNULL(first + 1), PG_GETARG_DATUM(first + 2), PG_ARGISNULL(first + 2), fn, d, v,
                                f);
}

// unpack_window(time_deltas int4[], vals float8[], flags int2[]) RETURNS TABLE (off int8,
// value float8, flags int2): one row per reading, in array order, off the running sum of the
// deltas, a NULL flags array all 0. NULL deltas or values: no rows (as unnest gives).
PG_FUNCTION_INFO_V1(sluice_unpack_window);
Datum sluice_unpack_window(PG_FUNCTION_ARGS);

Datum sluice_unpack_window(PG_FUNCTION_ARGS) {
    InitMaterializedSRF(fcinfo, 0);
    const int32* d;
    const float8* v;
    const int16* f;
    const int n = sluice_packed_arrays(fcinfo, 0, "unpack_window", &d, &v, &f);
    if (n == 0) return (Datum)0;
    ReturnSetInfo* rsinfo = (ReturnSetInfo*)fcinfo->resultinfo;
    Datum values[3];
    bool nulls[3] = {false, false, false};
    int64 off = 0;
    for (int i = 0; i < n; ++i) {
        off += d[i];
        values[0] = Int64GetDatum(off);
        values[1] = Float8GetDatum(v[i]);
        values[2] = Int16GetDatum(f != NULL ? f[i] : 0);
        tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
    }
    return (Datum)0;
}

void _PG_init(void) {
    DefineCustomBoolVariable(
        "sluice_readings.enabled", "Adds window_start bounds implied by time predicates on Sluice's readings views.",
        "Off only to compare plans and results without it.", &enabled, true, PGC_USERSET, 0, NULL, NULL, NULL);
    MarkGUCPrefixReserved("sluice_readings");
    prev_planner_hook = planner_hook;
    planner_hook = sluice_planner;
    sluice_ordered_decode_init();
}
