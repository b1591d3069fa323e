// SPDX-License-Identifier: Apache-2.0
//
// Grouped aggregates over Sluice's readings views, answered from per-bucket partial
// aggregates of each packed window instead of a row per reading (part of sluice_readings;
// the planner hook in sluice_readings.c calls sluice_use_bucket_partials after it has added
// the window_start bounds).
//
// A query such as
//
//   SELECT date_bin('1 minute', time, origin) AS minute, device, avg(value), max(value)
//   FROM sluice_telemetry.readings
//   WHERE metric = 'temperature' AND time >= $from AND time < $to GROUP BY 1, 2
//
// would decode every reading in range into a row (unpack_window) and group those. It is
// rewritten before planning so that the view calls bucket_window instead, which scans a
// packed row's arrays in C and returns one row per bucket that the window's readings in
// [$from, $to) fall into: their earliest and latest time, count, sum, min and max. The query
// then groups these partials: the view's `time` is a partial's earliest reading (all readings
// of a partial are in one bucket, so the bucket expression gives the same value for it),
// count(*) and count(value) become sum(n), avg(value) sum(sum) / sum(n), min/max(value)
// min(min)/max(max), max(time) max(latest); the time conditions move into bucket_window.
//
// It applies only where the result cannot change (but for the rounding of float sums added
// in another order, and avg of values whose squares overflow, which PostgreSQL's avg rejects):
//  - the query reads one readings view and nothing else, and groups: no grouping sets,
//    window functions, set-returning target lists, sublinks or row locks;
//  - outside aggregates, `time` appears only inside buckets of one width and origin:
//    date_bin(interval, time, origin), TimescaleDB's time_bucket(interval, time[, origin]),
//    or Grafana's floor(extract(epoch from time) / seconds), with constant widths in whole
//    microseconds and no months;
//  - WHERE is an AND of conditions on the view's other columns (device, metric, unit) and of
//    at most one lower and one upper bound `time OP e` (e a timestamptz free of the query's
//    columns, volatile functions and sublinks);
//  - the aggregates are count(*), count/min/max of time and count/sum/avg/min/max of value,
//    without DISTINCT, ORDER BY or FILTER.
// Anything else is planned as written. `SET sluice_readings.enabled = off` turns it off.
// clang-format off
#include "postgres.h"  // first, as in every PostgreSQL source file
// clang-format on

#include <math.h>

#include "catalog/dependency.h"
#include "catalog/pg_aggregate.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type_d.h"
#include "commands/extension.h"
#include "common/int.h"
#include "fmgr.h"
#include "funcapi.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/optimizer.h"
#include "parser/parsetree.h"
#include "rewrite/rewriteManip.h"
#include "sluice_readings.h"
#include "utils/builtins.h"
#include "utils/float.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

// bucket_window's columns, in order.
enum { COL_FIRST = 1, COL_LAST, COL_N, COL_SUM, COL_MIN, COL_MAX, N_COLS = COL_MAX };
static const char* const col_names[N_COLS] = {"first", "last", "n", "sum", "min", "max"};
static const Oid col_types[N_COLS] = {TIMESTAMPTZOID, TIMESTAMPTZOID, INT4OID, FLOAT8OID, FLOAT8OID, FLOAT8OID};

// TimescaleDB's time_bucket origin when none is given: Monday 2000-01-03 (time_bucket.c).
#define TIMESCALE_DEFAULT_ORIGIN (2 * USECS_PER_DAY)
// The Unix epoch as a PostgreSQL timestamp.
#define UNIX_EPOCH_TS (-(int64)(POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY)

typedef struct var_search {
    Index varno;
    AttrNumber attno;  // 0: any column
    int levelsup;
} var_search;

static bool refers_walker(Node* node, var_search* s) {
    if (node == NULL) return false;
    if (IsA(node, Var)) {
        const Var* v = (const Var*)node;
        return (int)v->varlevelsup == s->levelsup && (Index)v->varno == s->varno &&
               (s->attno == 0 || v->varattno == s->attno);
    }
    if (IsA(node, Query)) {
        s->levelsup++;
        bool found = query_tree_walker((Query*)node, refers_walker, s, 0);
        s->levelsup--;
        return found;
    }
    return expression_tree_walker(node, refers_walker, s);
}

// Whether `node` (of the query that has it at level 0) refers to column attno (0: any) of
// FROM item varno.
static bool refers_to(Node* node, Index varno, AttrNumber attno) {
    var_search s = {varno, attno, 0};
    return refers_walker(node, &s);
}

static bool is_column(const Node* node, Index varno, AttrNumber attno) {
    return node != NULL && IsA(node, Var) && (Index)((const Var*)node)->varno == varno &&
           ((const Var*)node)->varattno == attno && ((const Var*)node)->varlevelsup == 0;
}

// Every join of the view is inner (the function's rows are not null-extended).
static bool inner_joins_only(Node* jt) {
    if (IsA(jt, RangeTblRef)) return true;
    if (IsA(jt, JoinExpr)) {
        const JoinExpr* j = (const JoinExpr*)jt;
        return j->jointype == JOIN_INNER && inner_joins_only(j->larg) && inner_joins_only(j->rarg);
    }
    ListCell* lc;
    foreach (lc, ((FromExpr*)jt)->fromlist) {
        if (!inner_joins_only((Node*)lfirst(lc))) return false;
    }
    return true;
}

// The ON clauses of a join tree.
static List* join_quals(Node* jt, List* out) {
    if (IsA(jt, JoinExpr)) {
        const JoinExpr* j = (const JoinExpr*)jt;
        if (j->quals != NULL) out = lappend(out, j->quals);
        return join_quals(j->rarg, join_quals(j->larg, out));
    }
    if (IsA(jt, FromExpr)) {
        ListCell* lc;
        foreach (lc, ((FromExpr*)jt)->fromlist)
            out = join_quals((Node*)lfirst(lc), out);
    }
    return out;
}

// Whether `s` is a readings view: packed rows joined (inner) with unpack_window(deltas,
// vals, flags) of them, its `time` window_start + offset, `value` and `flags` the function's
// columns, nothing else of the function used.
bool sluice_match_view(Query* s, view_shape* out, module_context* ctx) {
    if (!sluice_only_selects_and_joins(s) || s->hasSubLinks || s->rowMarks != NIL || s->cteList != NIL ||
        !inner_joins_only((Node*)s->jointree))
        return false;
    memset(out, 0, sizeof *out);
    out->view = s;
    ListCell* lc;
    Index i = 0;
    foreach (lc, s->rtable) {
        RangeTblEntry* rte = (RangeTblEntry*)lfirst(lc);
        ++i;
        if (rte->rtekind != RTE_FUNCTION) continue;
        if (out->func_rte != NULL || list_length(rte->functions) != 1 || rte->funcordinality) return false;
        const RangeTblFunction* f = (const RangeTblFunction*)linitial(rte->functions);
        if (!IsA(f->funcexpr, FuncExpr) || ((FuncExpr*)f->funcexpr)->funcid != ctx->unpack_fn) return false;
        out->func_rte = rte;
        out->func_index = i;
        out->unpack = (FuncExpr*)f->funcexpr;
    }
    if (out->func_rte == NULL || list_length(out->unpack->args) != 3) return false;
    const Index x = out->func_index;
    foreach (lc, s->targetList) {
        TargetEntry* tle = (TargetEntry*)lfirst(lc);
        if (!refers_to((Node*)tle->expr, x, 0)) continue;
        if (is_column((Node*)tle->expr, x, 2) && out->value == NULL) {
            out->value = tle;
        } else if (is_column((Node*)tle->expr, x, 3) && out->flags == NULL) {
            out->flags = tle;
        } else if (out->time == NULL && tle->resname != NULL && strcmp(tle->resname, "time") == 0 &&
                   IsA(tle->expr, OpExpr)) {
            // window_start + <an expression of the offset alone>
            OpExpr* plus = (OpExpr*)tle->expr;
            if (list_length(plus->args) != 2 || !IsA(linitial(plus->args), Var) ||
                get_opcode(plus->opno) != F_TIMESTAMPTZ_PL_INTERVAL)
                return false;
            Node* offset = (Node*)lsecond(plus->args);
            if (!sluice_is_window_start(s, (Var*)linitial(plus->args), ctx) || !refers_to(offset, x, 1) ||
                refers_to(offset, x, 2) || refers_to(offset, x, 3) || contain_vars_of_level(offset, 1) ||
                contain_volatile_functions(offset))
                return false;
            // No other FROM item's column in the offset.
            for (Index j = 1; j <= (Index)list_length(s->rtable); ++j) {
                if (j != x && refers_to(offset, j, 0)) return false;
            }
            out->time = tle;
            out->window_start = (Var*)linitial(plus->args);
        } else {
            return false;
        }
    }
    if (out->time == NULL || out->value == NULL) return false;
    if (refers_to(s->jointree->quals, x, 0)) return false;
    foreach (lc, join_quals((Node*)s->jointree, NIL)) {
        if (refers_to((Node*)lfirst(lc), x, 0)) return false;
    }
    // The function's arguments read only the packed row (no other lateral reference).
    return !contain_vars_of_level((Node*)out->unpack->args, 1);
}

// A bucket: readings with equal floor((time - origin) / width) share it (width 0: one
// bucket per window).
typedef struct bucket {
    int64 width;
    TimestampTz origin;
} bucket;

// `n` folded to a constant where it is one (an int literal cast to numeric is still a cast
// when the planner hook runs).
static Node* folded(Node* n) {
    return IsA(n, Const) ? n : eval_const_expressions(NULL, (Node*)copyObject(n));
}

static bool const_interval_width(Node* n, int64* width) {
    n = folded(n);
    if (!IsA(n, Const) || ((Const*)n)->constisnull || ((Const*)n)->consttype != INTERVALOID) return false;
    const Interval* iv = DatumGetIntervalP(((Const*)n)->constvalue);
    int64 days_us;
    if (iv->month != 0 || pg_mul_s64_overflow(iv->day, USECS_PER_DAY, &days_us) ||
        pg_add_s64_overflow(iv->time, days_us, width))
        return false;
    return *width > 0;
}

static bool const_finite_timestamptz(Node* n, TimestampTz* t) {
    n = folded(n);
    if (!IsA(n, Const) || ((Const*)n)->constisnull || ((Const*)n)->consttype != TIMESTAMPTZOID) return false;
    *t = DatumGetTimestampTz(((Const*)n)->constvalue);
    return !TIMESTAMP_NOT_FINITE(*t);
}

static bool is_timescale_time_bucket(Oid fn) {
    const char* name = get_func_name(fn);
    if (name == NULL || strcmp(name, "time_bucket") != 0) return false;
    const Oid ext = get_extension_oid("timescaledb", true);
    return OidIsValid(ext) && getExtensionOfObject(ProcedureRelationId, fn) == ext;
}

// Whether `node` is a bucket of the time column (attno of FROM item 1); sets *b.
static bool match_bucket(Node* node, AttrNumber time, bucket* b) {
    if (!IsA(node, FuncExpr)) return false;
    const FuncExpr* f = (const FuncExpr*)node;
    const int nargs = list_length(f->args);
    if (f->funcid == F_DATE_BIN_INTERVAL_TIMESTAMPTZ_TIMESTAMPTZ) {
        // date_bin(width, time, origin)
        return nargs == 3 && is_column(lsecond(f->args), 1, time) &&
               const_interval_width(linitial(f->args), &b->width) &&
               const_finite_timestamptz(lthird(f->args), &b->origin);
    }
    if (f->funcid == F_FLOOR_NUMERIC) {
        // floor(extract(epoch from time) / seconds)
        Node* div = linitial(f->args);
        if (!IsA(div, OpExpr) || get_opcode(((OpExpr*)div)->opno) != F_NUMERIC_DIV) return false;
        Node* epoch = linitial(((OpExpr*)div)->args);
        Node* seconds = folded(lsecond(((OpExpr*)div)->args));
        if (!IsA(epoch, FuncExpr) || ((FuncExpr*)epoch)->funcid != F_EXTRACT_TEXT_TIMESTAMPTZ) return false;
        Node* field = linitial(((FuncExpr*)epoch)->args);
        if (!IsA(field, Const) || ((Const*)field)->constisnull ||
            pg_strcasecmp(TextDatumGetCString(((Const*)field)->constvalue), "epoch") != 0 ||
            !is_column(lsecond(((FuncExpr*)epoch)->args), 1, time))
            return false;
        if (!IsA(seconds, Const) || ((Const*)seconds)->constisnull || ((Const*)seconds)->consttype != NUMERICOID)
            return false;
        const double s = DatumGetFloat8(DirectFunctionCall1(numeric_float8, ((Const*)seconds)->constvalue));
        if (!(s > 0 && s < 1e12)) return false;
        const double us = s * 1e6;
        b->width = (int64)llround(us);
        b->origin = UNIX_EPOCH_TS;
        return b->width > 0 && fabs(us - (double)b->width) < 1e-3;
    }
    if ((nargs == 2 || nargs == 3) && exprType(linitial(f->args)) == INTERVALOID &&
        exprType(lsecond(f->args)) == TIMESTAMPTZOID && (nargs == 2 || exprType(lthird(f->args)) == TIMESTAMPTZOID) &&
        is_column(lsecond(f->args), 1, time) && is_timescale_time_bucket(f->funcid)) {
        // time_bucket(width, time[, origin])
        b->origin = TIMESCALE_DEFAULT_ORIGIN;
        return const_interval_width(linitial(f->args), &b->width) &&
               (nargs == 2 || const_finite_timestamptz(lthird(f->args), &b->origin));
    }
    return false;
}

typedef struct bucket_search {
    AttrNumber time;
    bool found;
    bool bad;  // time outside a bucket, or buckets that differ
    bucket b;
} bucket_search;

// Buckets of time in an expression, outside this query's aggregates.
static bool bucket_walker(Node* node, bucket_search* s) {
    if (node == NULL || s->bad) return false;
    if (IsA(node, Aggref) && ((Aggref*)node)->agglevelsup == 0) return false;
    bucket b;
    if (match_bucket(node, s->time, &b)) {
        if (s->found && (b.width != s->b.width || b.origin != s->b.origin)) s->bad = true;
        s->found = true;
        s->b = b;
        return false;
    }
    if (is_column(node, 1, s->time) || IsA(node, Query)) {
        s->bad = true;  // time itself, or a sublink
        return false;
    }
    return expression_tree_walker(node, bucket_walker, s);
}

typedef struct time_bounds {
    Expr *lo, *hi;  // NULL: none
    bool lo_strict, hi_strict;
} time_bounds;

static void flatten_and(Node* n, List** out) {
    if (n == NULL) return;
    if (IsA(n, List)) {
        ListCell* lc;
        foreach (lc, (List*)n)
            flatten_and((Node*)lfirst(lc), out);
    } else if (IsA(n, BoolExpr) && ((BoolExpr*)n)->boolop == AND_EXPR) {
        flatten_and((Node*)((BoolExpr*)n)->args, out);
    } else {
        *out = lappend(*out, n);
    }
}

// Splits WHERE into the bounds on time and the rest; false where a condition on time is
// not one bucket_window can apply.
static bool split_where(Node* quals, AttrNumber time, time_bounds* b, List** rest) {
    List* conjuncts = NIL;
    flatten_and(quals, &conjuncts);
    ListCell* lc;
    foreach (lc, conjuncts) {
        Node* c = (Node*)lfirst(lc);
        if (!refers_to(c, 1, time)) {
            *rest = lappend(*rest, c);
            continue;
        }
        if (!IsA(c, OpExpr) || list_length(((OpExpr*)c)->args) != 2) return false;
        const Oid fn = get_opcode(((OpExpr*)c)->opno);
        const comparison* cmp = sluice_find_comparison(fn);
        if (cmp == NULL || (fn != F_TIMESTAMPTZ_LT && fn != F_TIMESTAMPTZ_LE && fn != F_TIMESTAMPTZ_EQ &&
                            fn != F_TIMESTAMPTZ_GE && fn != F_TIMESTAMPTZ_GT))
            return false;
        Node* l = linitial(((OpExpr*)c)->args);
        Node* r = lsecond(((OpExpr*)c)->args);
        const bool var_on_right = is_column(r, 1, time);
        if (!var_on_right && !is_column(l, 1, time)) return false;
        Node* e = var_on_right ? l : r;
        if (contain_vars_of_level(e, 0) || contain_volatile_functions(e) || checkExprHasSubLink(e)) return false;
        const int kind = var_on_right ? -cmp->kind : cmp->kind;  // e < time  <=>  time > e
        if (kind >= 0) {
            if (b->lo != NULL) return false;
            b->lo = (Expr*)e;
            b->lo_strict = cmp->strict;
        }
        if (kind <= 0) {
            if (b->hi != NULL) return false;
            b->hi = (Expr*)e;
            b->hi_strict = cmp->strict;
        }
    }
    return true;
}

// The view's columns as the query sees them, and the partial columns appended to the view.
typedef struct agg_context {
    AttrNumber time, value;
    AttrNumber partial[N_COLS + 1];  // by COL_*; [COL_FIRST] is time
    bool bad;
} agg_context;

static Var* view_var(AttrNumber attno, Oid type) {
    return makeVar(1, attno, type, -1, InvalidOid, 0);
}

static Oid transition_type(Oid aggregate) {
    HeapTuple tuple = SearchSysCache1(AGGFNOID, ObjectIdGetDatum(aggregate));
    if (!HeapTupleIsValid(tuple)) elog(ERROR, "cache lookup failed for aggregate %u", aggregate);
    const Oid type = ((Form_pg_aggregate)GETSTRUCT(tuple))->aggtranstype;
    ReleaseSysCache(tuple);
    return type;
}

// `a` (an aggregate of one argument or *) over the partial column `col`, as aggregate fn.
static Aggref* aggregate_of(const Aggref* a, Oid fn, Oid result, const agg_context* c, int col) {
    Aggref* out = (Aggref*)copyObject(a);
    out->aggfnoid = fn;
    out->aggtype = result;
    out->aggstar = false;
    out->aggtranstype = transition_type(fn);
    out->aggargtypes = list_make1_oid(col_types[col - 1]);
    out->args = list_make1(makeTargetEntry((Expr*)view_var(c->partial[col], col_types[col - 1]), 1, NULL, false));
    return out;
}

// count: sum of n, 0 without rows.
static Node* count_of(const Aggref* a, const agg_context* c) {
    CoalesceExpr* e = makeNode(CoalesceExpr);
    e->coalescetype = INT8OID;
    e->args = list_make2(aggregate_of(a, F_SUM_INT4, INT8OID, c, COL_N),
                         makeConst(INT8OID, -1, InvalidOid, sizeof(int64), Int64GetDatum(0), false, FLOAT8PASSBYVAL));
    e->location = -1;
    return (Node*)e;
}

static Node* aggregate_mutator(Node* node, agg_context* c) {
    if (node == NULL || c->bad) return node;
    if (!IsA(node, Aggref) || ((Aggref*)node)->agglevelsup != 0)
        return expression_tree_mutator(node, aggregate_mutator, (void*)c);
    const Aggref* a = (const Aggref*)node;
    AttrNumber arg = 0;
    if (a->aggdistinct != NIL || a->aggorder != NIL || a->aggfilter != NULL || a->aggdirectargs != NIL ||
        a->aggkind != AGGKIND_NORMAL || a->aggvariadic) {
        c->bad = true;
        return node;
    }
    if (!a->aggstar) {
        const TargetEntry* te = list_length(a->args) == 1 ? (const TargetEntry*)linitial(a->args) : NULL;
        if (te == NULL || !IsA(te->expr, Var) || ((Var*)te->expr)->varno != 1 || ((Var*)te->expr)->varlevelsup != 0) {
            c->bad = true;
            return node;
        }
        arg = ((Var*)te->expr)->varattno;
    }
    const bool of_value = arg == c->value, of_time = arg == c->time;
    switch (a->aggfnoid) {
        case F_COUNT_:
            return count_of(a, c);
        case F_COUNT_ANY:
            if (of_value || of_time) return count_of(a, c);
            break;
        case F_SUM_FLOAT8:
            if (of_value) return (Node*)aggregate_of(a, F_SUM_FLOAT8, FLOAT8OID, c, COL_SUM);
            break;
        case F_MIN_FLOAT8:
            if (of_value) return (Node*)aggregate_of(a, F_MIN_FLOAT8, FLOAT8OID, c, COL_MIN);
            break;
        case F_MAX_FLOAT8:
            if (of_value) return (Node*)aggregate_of(a, F_MAX_FLOAT8, FLOAT8OID, c, COL_MAX);
            break;
        case F_MIN_TIMESTAMPTZ:
            if (of_time) return (Node*)copyObject(a);  // time is the partial's earliest reading
            break;
        case F_MAX_TIMESTAMPTZ:
            if (of_time) return (Node*)aggregate_of(a, F_MAX_TIMESTAMPTZ, TIMESTAMPTZOID, c, COL_LAST);
            break;
        case F_AVG_FLOAT8:
            if (of_value) {
                Expr* sum = (Expr*)aggregate_of(a, F_SUM_FLOAT8, FLOAT8OID, c, COL_SUM);
                Expr* n = (Expr*)makeFuncExpr(F_FLOAT8_INT8, FLOAT8OID,
                                              list_make1(aggregate_of(a, F_SUM_INT4, INT8OID, c, COL_N)), InvalidOid,
                                              InvalidOid, COERCE_IMPLICIT_CAST);
                return (Node*)make_opclause(sluice_operator_oid("/", FLOAT8OID, FLOAT8OID), FLOAT8OID, false, sum, n,
                                            InvalidOid, InvalidOid);
            }
            break;
        default:
            break;
    }
    c->bad = true;
    return node;
}

static Const* bool_const(bool b) {
    return makeConst(BOOLOID, -1, InvalidOid, 1, BoolGetDatum(b), false, true);
}

static Expr* bound_or(Expr* e, TimestampTz unbounded) {
    if (e == NULL)
        return (Expr*)makeConst(TIMESTAMPTZOID, -1, InvalidOid, sizeof(TimestampTz), TimestampTzGetDatum(unbounded),
                                false, FLOAT8PASSBYVAL);
    e = (Expr*)copyObject(e);
    IncrementVarSublevelsUp((Node*)e, 1, 0);  // now one level further down, in the view
    return e;
}

void sluice_use_bucket_partials(Query* q, module_context* ctx) {
    if (q->commandType != CMD_SELECT || !q->hasAggs || q->groupingSets != NIL || q->hasWindowFuncs ||
        q->hasTargetSRFs || q->hasSubLinks || q->setOperations != NULL || q->rowMarks != NIL ||
        list_length(q->rtable) != 1 || q->jointree == NULL || list_length(q->jointree->fromlist) != 1 ||
        !IsA(linitial(q->jointree->fromlist), RangeTblRef) ||
        ((RangeTblRef*)linitial(q->jointree->fromlist))->rtindex != 1)
        return;
    RangeTblEntry* rte = rt_fetch(1, q->rtable);
    if (rte->rtekind != RTE_SUBQUERY || rte->security_barrier || rte->lateral) return;
    sluice_look_up(ctx);
    if (!OidIsValid(ctx->bucket_fn) || !OidIsValid(ctx->unpack_fn)) return;
    view_shape v;
    if (!sluice_match_view(rte->subquery, &v, ctx)) return;
    const AttrNumber time = v.time->resno;

    // Where time appears outside aggregates: buckets of one kind.
    bucket_search bs = {time, false, false, {0, 0}};
    bucket_walker((Node*)q->targetList, &bs);
    bucket_walker(q->havingQual, &bs);
    if (bs.bad) return;
    if (!bs.found) bs.b.width = 0;  // one partial per window

    time_bounds tb = {NULL, NULL, false, false};
    List* rest = NIL;
    if (!split_where(q->jointree->quals, time, &tb, &rest)) return;
    if (refers_to((Node*)rest, 1, v.value->resno) || (v.flags != NULL && refers_to((Node*)rest, 1, v.flags->resno)))
        return;

    agg_context ac;
    memset(&ac, 0, sizeof ac);
    ac.time = time;
    ac.value = v.value->resno;
    ac.partial[COL_FIRST] = time;
    AttrNumber next = (AttrNumber)(list_length(v.view->targetList) + 1);
    for (int col = COL_LAST; col <= N_COLS; ++col)
        ac.partial[col] = next++;
    List* tlist = (List*)aggregate_mutator((Node*)q->targetList, &ac);
    Node* having = aggregate_mutator(q->havingQual, &ac);
    if (ac.bad) return;
    // Nothing may read a reading's value or flags any more.
    if (refers_to((Node*)tlist, 1, v.value->resno) || refers_to(having, 1, v.value->resno)) return;
    if (v.flags != NULL && (refers_to((Node*)tlist, 1, v.flags->resno) || refers_to(having, 1, v.flags->resno))) return;

    // Commit: the view calls bucket_window, its time is each partial's earliest reading.
    TimestampTz origin = bs.b.width > 0 ? bs.b.origin : 0;
    List* args = list_make3(copyObject(v.window_start), copyObject(linitial(v.unpack->args)),
                            copyObject(lsecond(v.unpack->args)));
    args = lappend(
        args, makeConst(INT8OID, -1, InvalidOid, sizeof(int64), Int64GetDatum(bs.b.width), false, FLOAT8PASSBYVAL));
    args = lappend(args, makeConst(TIMESTAMPTZOID, -1, InvalidOid, sizeof(TimestampTz), TimestampTzGetDatum(origin),
                                   false, FLOAT8PASSBYVAL));
    args = lappend(args, bound_or(tb.lo, DT_NOBEGIN));
    args = lappend(args, bool_const(tb.lo_strict));
    args = lappend(args, bound_or(tb.hi, DT_NOEND));
    args = lappend(args, bool_const(tb.hi_strict));
    FuncExpr* call = makeFuncExpr(ctx->bucket_fn, get_func_rettype(ctx->bucket_fn), args, InvalidOid, InvalidOid,
                                  COERCE_EXPLICIT_CALL);
    call->funcretset = true;
    RangeTblFunction* rtf = (RangeTblFunction*)linitial(v.func_rte->functions);
    rtf->funcexpr = (Node*)call;
    rtf->funccolcount = N_COLS;
    rtf->funccolnames = rtf->funccoltypes = rtf->funccoltypmods = rtf->funccolcollations = NIL;
    List* names = NIL;
    for (int col = 1; col <= N_COLS; ++col)
        names = lappend(names, makeString(pstrdup(col_names[col - 1])));
    v.func_rte->eref = makeAlias(v.func_rte->eref->aliasname, names);
    if (v.func_rte->alias != NULL) v.func_rte->alias->colnames = NIL;

    v.time->expr = (Expr*)makeVar(v.func_index, COL_FIRST, TIMESTAMPTZOID, -1, InvalidOid, 0);
    v.value->expr = (Expr*)makeNullConst(FLOAT8OID, -1, InvalidOid);
    if (v.flags != NULL) v.flags->expr = (Expr*)makeNullConst(exprType((Node*)v.flags->expr), -1, InvalidOid);
    for (int col = COL_LAST; col <= N_COLS; ++col) {
        char name[32];
        snprintf(name, sizeof name, "sluice_partial_%s", col_names[col - 1]);
        Var* var = makeVar(v.func_index, (AttrNumber)col, col_types[col - 1], -1, InvalidOid, 0);
        v.view->targetList =
            lappend(v.view->targetList, makeTargetEntry((Expr*)var, ac.partial[col], pstrdup(name), false));
        rte->eref->colnames = lappend(rte->eref->colnames, makeString(pstrdup(name)));
    }
    q->targetList = tlist;
    q->havingQual = having;
    q->jointree->quals = rest == NIL ? NULL : (Node*)make_ands_explicit(rest);
}

// One partial: readings of one bucket (or one reading, before the origin).
typedef struct partial {
    TimestampTz first, last;
    int32 n;
    float8 sum, min, max;
} partial;

static void emit(ReturnSetInfo* rsinfo, const partial* p) {
    Datum values[N_COLS] = {TimestampTzGetDatum(p->first), TimestampTzGetDatum(p->last), Int32GetDatum(p->n),
                            Float8GetDatum(p->sum),        Float8GetDatum(p->min),       Float8GetDatum(p->max)};
    bool nulls[N_COLS] = {false, false, false, false, false, false};
    tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

// bucket_window(window_start, time_deltas, vals, width, origin, lo, lo_strict, hi, hi_strict)
// RETURNS TABLE (first, last, n, sum, min, max): the readings of one packed row with time in
// lo..hi (strict: excluded), grouped into runs of one bucket floor((time - origin) / width)
// (width 0: one bucket), a run per reading before the origin. A bucket's readings may
// come in more than one run (readings out of order); the query's GROUP BY merges them.
// min/max order NaN above every number and sums overflow as PostgreSQL's float8 aggregates.
PG_FUNCTION_INFO_V1(sluice_bucket_window);
Datum sluice_bucket_window(PG_FUNCTION_ARGS);

Datum sluice_bucket_window(PG_FUNCTION_ARGS) {
    InitMaterializedSRF(fcinfo, 0);
    const TimestampTz window_start = PG_GETARG_TIMESTAMPTZ(0);
    ArrayType* deltas = PG_GETARG_ARRAYTYPE_P(1);
    ArrayType* vals = PG_GETARG_ARRAYTYPE_P(2);
    const int64 width = PG_GETARG_INT64(3);
    const TimestampTz origin = PG_GETARG_TIMESTAMPTZ(4);
    const TimestampTz lo = PG_GETARG_TIMESTAMPTZ(5);
    const bool lo_strict = PG_GETARG_BOOL(6);
    const TimestampTz hi = PG_GETARG_TIMESTAMPTZ(7);
    const bool hi_strict = PG_GETARG_BOOL(8);
    const int n = sluice_array_length(deltas, "bucket_window", "time_deltas");
    if (sluice_array_length(vals, "bucket_window", "vals") != n)
        ereport(ERROR, (errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
                        errmsg("bucket_window: time_deltas and vals have different lengths")));
    const int32* d = n > 0 ? (const int32*)ARR_DATA_PTR(deltas) : NULL;
    const float8* v = n > 0 ? (const float8*)ARR_DATA_PTR(vals) : NULL;
    ReturnSetInfo* rsinfo = (ReturnSetInfo*)fcinfo->resultinfo;
    partial p = {0, 0, 0, 0, 0, 0};
    int64 key = 0;
    bool open = false, key_exact = false;
    int64 off = 0;
    for (int i = 0; i < n; ++i) {
        off += d[i];
        const TimestampTz t = window_start + off;
        if (t < lo || (lo_strict && t == lo) || t > hi || (hi_strict && t == hi)) continue;
        int64 k = 0, since;
        bool exact = false;
        if (width > 0) {
            if (t < origin || pg_sub_s64_overflow(t, origin, &since)) {
                exact = true;  // before the origin, buckets' edges differ between functions
                k = t;
            } else {
                k = since / width;
            }
        }
        if (open && k == key && exact == key_exact) {
            p.n++;
            const float8 sum = p.sum + v[i];
            if (unlikely(isinf(sum)) && !isinf(p.sum) && !isinf(v[i])) float_overflow_error();
            p.sum = sum;
            if (float8_lt(v[i], p.min)) p.min = v[i];
            if (float8_gt(v[i], p.max)) p.max = v[i];
            if (t < p.first) p.first = t;
            if (t > p.last) p.last = t;
            continue;
        }
        if (open) emit(rsinfo, &p);
        p.first = p.last = t;
        p.n = 1;
        p.sum = p.min = p.max = v[i];
        key = k;
        key_exact = exact;
        open = true;
    }
    if (open) emit(rsinfo, &p);
    return (Datum)0;
}
