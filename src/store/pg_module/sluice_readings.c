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
// before planning: for every top-level WHERE conjunct `time OP expr` on such a view (OP one
// of < <= = >= > on timestamptz, expr free of this level's columns and of volatile
// functions), it adds to the view's own WHERE the implied bound on window_start:
//
//   time >= e, time > e   =>  window_start > e - 10 min
//   time <= e             =>  window_start <= e
//   time < e              =>  window_start < e
//   time = e              =>  both
//
// The added conditions are implied by the user's, so results never change; partition
// pruning (native), chunk exclusion (TimescaleDB) and the (device, metric, window_start)
// btree then read only the windows in range. A view matches when the targeted column is
// named "time" and its expression is `<window_start of sluice_telemetry.telemetry_packed>
// + ...`. The window width here, store/packing.cc and the settings row window_us must
// change together.
// clang-format off
#include "postgres.h"  // first, as in every PostgreSQL source file
// clang-format on

#include "catalog/namespace.h"
#include "catalog/pg_type_d.h"
#include "fmgr.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "nodes/pg_list.h"
#include "optimizer/optimizer.h"
#include "optimizer/planner.h"
#include "parser/parsetree.h"
#include "rewrite/rewriteManip.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"

PG_MODULE_MAGIC;

void _PG_init(void);

#define SLUICE_WINDOW_US INT64CONST(600000000)

static planner_hook_type prev_planner_hook = NULL;

typedef struct push_context {
    Oid packed_relid;  // sluice_telemetry.telemetry_packed, InvalidOid when absent
    bool looked_up;
} push_context;

static Oid packed_relid(push_context* ctx) {
    if (!ctx->looked_up) {
        Oid ns = get_namespace_oid("sluice_telemetry", true);
        ctx->packed_relid = OidIsValid(ns) ? get_relname_relid("telemetry_packed", ns) : InvalidOid;
        ctx->looked_up = true;
    }
    return ctx->packed_relid;
}

// kind of comparison: -1 upper bound (<, <=), +1 lower bound (>, >=), 0 equality; `strict`
// for < and >. Returns false when `fn` is not a timestamptz comparison.
static bool comparison_kind(Oid fn, int* kind, bool* strict) {
    switch (fn) {
        case F_TIMESTAMPTZ_LT:
            *kind = -1;
            *strict = true;
            return true;
        case F_TIMESTAMPTZ_LE:
            *kind = -1;
            *strict = false;
            return true;
        case F_TIMESTAMPTZ_EQ:
            *kind = 0;
            *strict = false;
            return true;
        case F_TIMESTAMPTZ_GE:
            *kind = 1;
            *strict = false;
            return true;
        case F_TIMESTAMPTZ_GT:
            *kind = 1;
            *strict = true;
            return true;
        default:
            return false;
    }
}

static Oid operator_oid(const char* name, Oid left, Oid right) {
    return OpernameGetOprid(list_make2(makeString("pg_catalog"), makeString(pstrdup(name))), left, right);
}

static Expr* make_ts_op(const char* name, Expr* l, Expr* r) {
    Oid op = operator_oid(name, TIMESTAMPTZOID, TIMESTAMPTZOID);
    return make_opclause(op, BOOLOID, false, l, r, InvalidOid, InvalidOid);
}

// e - 10 minutes: folded when e is a non-null constant, else an expression (stable:
// PostgreSQL prunes with it at executor start-up).
static Expr* minus_window(Expr* e) {
    if (IsA(e, Const) && !((Const*)e)->constisnull) {
        TimestampTz t = DatumGetTimestampTz(((Const*)e)->constvalue);
        if (TIMESTAMP_NOT_FINITE(t)) return (Expr*)copyObject(e);
        return (Expr*)makeConst(TIMESTAMPTZOID, -1, InvalidOid, sizeof(TimestampTz),
                                TimestampTzGetDatum(t - SLUICE_WINDOW_US), false, FLOAT8PASSBYVAL);
    }
    Interval* iv = (Interval*)palloc0(sizeof(Interval));
    iv->time = SLUICE_WINDOW_US;
    Const* c = makeConst(INTERVALOID, -1, InvalidOid, sizeof(Interval), PointerGetDatum(iv), false, false);
    Oid op = operator_oid("-", TIMESTAMPTZOID, INTERVALOID);
    return make_opclause(op, TIMESTAMPTZOID, false, (Expr*)copyObject(e), (Expr*)c, InvalidOid, InvalidOid);
}

// When `var` names the time column of a packed-readings view in q's range table, returns
// the window_start Var inside that view's query (and the view's query in *sub).
static Var* window_start_of(Query* q, Var* var, Query** sub, push_context* ctx) {
    if (var->varlevelsup != 0 || var->varattno <= 0 || var->vartype != TIMESTAMPTZOID) return NULL;
    RangeTblEntry* rte = rt_fetch(var->varno, q->rtable);
    if (rte->rtekind != RTE_SUBQUERY || rte->subquery == NULL) return NULL;
    Query* s = rte->subquery;
    if (s->setOperations != NULL || s->groupClause != NIL || s->hasAggs || s->hasWindowFuncs || s->limitCount != NULL ||
        s->limitOffset != NULL || s->hasTargetSRFs || s->jointree == NULL)
        return NULL;
    TargetEntry* tle = get_tle_by_resno(s->targetList, var->varattno);
    if (tle == NULL || tle->resname == NULL || strcmp(tle->resname, "time") != 0) return NULL;
    if (!IsA(tle->expr, OpExpr)) return NULL;
    OpExpr* plus = (OpExpr*)tle->expr;
    if (list_length(plus->args) != 2 || !IsA(linitial(plus->args), Var)) return NULL;
    if (plus->opfuncid != F_TIMESTAMPTZ_PL_INTERVAL && get_opcode(plus->opno) != F_TIMESTAMPTZ_PL_INTERVAL) return NULL;
    Var* ws = (Var*)linitial(plus->args);
    if (ws->varlevelsup != 0 || ws->varattno <= 0) return NULL;
    RangeTblEntry* prte = rt_fetch(ws->varno, s->rtable);
    if (prte->rtekind != RTE_RELATION || !OidIsValid(packed_relid(ctx)) || prte->relid != packed_relid(ctx))
        return NULL;
    char* attname = get_attname(prte->relid, ws->varattno, true);
    if (attname == NULL || strcmp(attname, "window_start") != 0) return NULL;
    *sub = s;
    return ws;
}

static void add_qual(Query* s, Expr* qual) {
    s->jointree->quals = (Node*)make_and_qual(s->jointree->quals, (Node*)qual);
}

static void push_conjunct(Query* q, Node* clause, push_context* ctx) {
    if (!IsA(clause, OpExpr)) return;
    OpExpr* op = (OpExpr*)clause;
    if (list_length(op->args) != 2) return;
    int kind;
    bool strict;
    if (!comparison_kind(get_opcode(op->opno), &kind, &strict)) return;
    Node* l = (Node*)linitial(op->args);
    Node* r = (Node*)lsecond(op->args);
    Var* var;
    Expr* bound;
    if (IsA(l, Var)) {
        var = (Var*)l;
        bound = (Expr*)r;
    } else if (IsA(r, Var)) {
        var = (Var*)r;
        bound = (Expr*)l;
        kind = -kind;  // e < time  <=>  time > e
    } else {
        return;
    }
    if (contain_vars_of_level((Node*)bound, 0) || contain_volatile_functions((Node*)bound) ||
        checkExprHasSubLink((Node*)bound))
        return;
    Query* s = NULL;
    Var* ws = window_start_of(q, var, &s, ctx);
    if (ws == NULL) return;
    // Moved one query level down: references to outer queries get one more level.
    Expr* e = (Expr*)copyObject(bound);
    IncrementVarSublevelsUp((Node*)e, 1, 0);
    if (kind >= 0) add_qual(s, make_ts_op(">", (Expr*)copyObject(ws), minus_window(e)));
    if (kind <= 0) add_qual(s, make_ts_op(kind < 0 && strict ? "<" : "<=", (Expr*)copyObject(ws), e));
}

static void push_query(Query* q, push_context* ctx) {
    if (q->commandType != CMD_SELECT || q->jointree == NULL || q->jointree->quals == NULL) return;
    List* conjuncts = make_ands_implicit((Expr*)q->jointree->quals);
    ListCell* lc;
    foreach (lc, conjuncts) {
        Node* c = (Node*)lfirst(lc);
        if (IsA(c, BoolExpr) && ((BoolExpr*)c)->boolop == AND_EXPR) {
            ListCell* inner;
            foreach (inner, ((BoolExpr*)c)->args)
                push_conjunct(q, (Node*)lfirst(inner), ctx);
        } else {
            push_conjunct(q, c, ctx);
        }
    }
}

static bool push_walker(Node* node, void* context) {
    if (node == NULL) return false;
    if (IsA(node, Query)) {
        push_query((Query*)node, (push_context*)context);
        return query_tree_walker((Query*)node, push_walker, context, 0);
    }
    return expression_tree_walker(node, push_walker, context);
}

static PlannedStmt* sluice_planner(Query* parse, const char* query_string, int cursor_options,
                                   ParamListInfo bound_params) {
    push_context ctx = {InvalidOid, false};
    push_walker((Node*)parse, &ctx);
    if (prev_planner_hook) return prev_planner_hook(parse, query_string, cursor_options, bound_params);
    return standard_planner(parse, query_string, cursor_options, bound_params);
}

void _PG_init(void) {
    prev_planner_hook = planner_hook;
    planner_hook = sluice_planner;
}
