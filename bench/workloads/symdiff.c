/* symdiff: a single-threaded, small-object-heavy symbolic computation, in
 * the spirit of the classic compute benchmarks cfrac and espresso (Zorn &
 * Grunwald's allocation traces: many small short-lived objects).
 *
 *   symdiff EXPRESSIONS [DEPTH]
 *
 * Builds EXPRESSIONS random expression trees (constants, x, +, *, up to
 * DEPTH levels, default 9), differentiates each three times by tree
 * rewriting (product rule, sum rule), and simplifies after each step
 * (constant folding, x+0, x*1, x*0), all in arithmetic modulo a prime.
 * Every rewrite builds a new tree of 24-byte nodes and frees the old one.
 * Check: at a random point, the rewritten derivative must evaluate to the
 * derivative that dual-number evaluation of the original tree gives.
 */
#include "common.h"

#define P 1000003u

enum op { CONST, VAR, ADD, MUL };

typedef struct node {
    uint32_t op, val;
    struct node *l, *r;
} node;

static uint64_t seed = 99, nodes_made;

static node *mk(uint32_t op, uint32_t val, node *l, node *r) {
    node *n = xmalloc(sizeof *n);
    n->op = op;
    n->val = val;
    n->l = l;
    n->r = r;
    nodes_made++;
    return n;
}

static void drop(node *n) {
    while (n) {
        node *r = n->r;
        drop(n->l);
        free(n);
        n = r;
    }
}

static node *copy(const node *n) {
    return n->op <= VAR ? mk(n->op, n->val, NULL, NULL) : mk(n->op, 0, copy(n->l), copy(n->r));
}

static node *gen(int depth) {
    uint64_t r = rng_below(&seed, 10);
    if (depth == 0 || r < 3) {
        return rng_below(&seed, 2) ? mk(VAR, 0, NULL, NULL)
                                   : mk(CONST, (uint32_t)rng_below(&seed, 10), NULL, NULL);
    }
    return mk(r < 7 ? ADD : MUL, 0, gen(depth - 1), gen(depth - 1));
}

/* d/dx, as a new tree (the input is left alone). */
static node *diff(const node *n) {
    switch (n->op) {
    case CONST: return mk(CONST, 0, NULL, NULL);
    case VAR: return mk(CONST, 1, NULL, NULL);
    case ADD: return mk(ADD, 0, diff(n->l), diff(n->r));
    default:
        return mk(ADD, 0, mk(MUL, 0, diff(n->l), copy(n->r)), mk(MUL, 0, copy(n->l), diff(n->r)));
    }
}

/* Simplify, consuming the input and returning a new tree. */
static node *simp(node *n) {
    if (n->op <= VAR) return n;
    node *l = simp(n->l), *r = simp(n->r);
    uint32_t op = n->op;
    free(n);
    if (l->op == CONST && r->op == CONST) {
        uint32_t v = op == ADD ? (l->val + r->val) % P : (uint32_t)((uint64_t)l->val * r->val % P);
        free(l);
        free(r);
        return mk(CONST, v, NULL, NULL);
    }
    if (r->op == CONST) { /* constants to the left */
        node *t = l;
        l = r;
        r = t;
    }
    if (l->op == CONST) {
        if (l->val == 0) {
            if (op == ADD) {
                free(l);
                return r;
            }
            drop(r);
            return l;
        }
        if (op == MUL && l->val == 1) {
            free(l);
            return r;
        }
    }
    return mk(op, 0, l, r);
}

static uint32_t eval(const node *n, uint32_t x) {
    switch (n->op) {
    case CONST: return n->val;
    case VAR: return x;
    case ADD: return (eval(n->l, x) + eval(n->r, x)) % P;
    default: return (uint32_t)((uint64_t)eval(n->l, x) * eval(n->r, x) % P);
    }
}

/* Value and derivative at x together (forward-mode dual numbers). */
static void dual(const node *n, uint32_t x, uint32_t *v, uint32_t *d) {
    uint32_t lv, ld, rv, rd;
    switch (n->op) {
    case CONST: *v = n->val; *d = 0; return;
    case VAR: *v = x; *d = 1; return;
    case ADD:
        dual(n->l, x, &lv, &ld);
        dual(n->r, x, &rv, &rd);
        *v = (lv + rv) % P;
        *d = (ld + rd) % P;
        return;
    default:
        dual(n->l, x, &lv, &ld);
        dual(n->r, x, &rv, &rd);
        *v = (uint32_t)((uint64_t)lv * rv % P);
        *d = (uint32_t)(((uint64_t)ld * rv + (uint64_t)lv * rd) % P);
    }
}

static long size_of(const node *n) {
    return n->op <= VAR ? 1 : 1 + size_of(n->l) + size_of(n->r);
}

int main(int argc, char **argv) {
    long exprs = arg_long(argc, argv, 1, 2000);
    int depth = (int)arg_long(argc, argv, 2, 9);
    uint64_t checksum = 0;
    long checks = 0;
    for (long i = 0; i < exprs; i++) {
        node *e = gen(depth);
        for (int k = 0; k < 3 && size_of(e) < 200000; k++) {
            uint32_t x = (uint32_t)rng_below(&seed, P), v, d;
            dual(e, x, &v, &d);
            if (eval(e, x) != v) fail("symdiff: expression %ld: value mismatch", i);
            node *de = simp(diff(e));
            if (eval(de, x) != d) fail("symdiff: expression %ld: derivative %d wrong", i, k + 1);
            checksum = checksum * 31 + d;
            checks++;
            drop(e);
            e = de;
        }
        drop(e);
    }
    printf("symdiff ok: %ld expressions, %ld derivatives checked, %llu nodes, checksum %llu\n",
           exprs, checks, (unsigned long long)nodes_made, (unsigned long long)checksum);
    return 0;
}
