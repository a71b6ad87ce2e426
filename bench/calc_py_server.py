#!/usr/bin/env python3
"""A postfix calculator server as the course's exercise produces it: one thread per client,
blocking sockets, one line read with makefile().readline(), one reply sent with sendall().

    python3 bench/calc_py_server.py PORT      (0 picks a free port; the port is printed first)

Same protocol as `socklab calc serve` for the common cases (Decimal arithmetic, at most two
operands, OK / FALLO replies); used by bench/calc.sh for scale, not as a reference.
"""
import decimal
import socket
import sys
import threading

BINARY = {
    '+': lambda a, b: a + b,
    '-': lambda a, b: a - b,
    '*': lambda a, b: a * b,
    '/': lambda a, b: a / b,
    '%': lambda a, b: a % b,
    '^': lambda a, b: a ** b,
}
UNARY = {'neg': lambda a: -a, 'abs': abs, 'sqrt': lambda a: a.sqrt()}


def reply_to(token, operands):
    if token.upper() == 'QUIT':
        return 'OK bye'
    if token[:1].isdigit() or token[:1] in '.+-' and len(token) > 1:
        if len(operands) == 2:
            return 'FALLO too many operands'
        try:
            operands.append(decimal.Decimal(token))
        except decimal.InvalidOperation:
            return 'FALLO not a number'
        return 'OK'
    held = list(operands)
    operands.clear()
    try:
        if token in BINARY and len(held) == 2:
            result = BINARY[token](*held)
        elif token in UNARY and len(held) == 1:
            result = UNARY[token](held[0])
        else:
            return 'FALLO bad operator or operands'
    except (ArithmeticError, decimal.InvalidOperation):
        return 'FALLO error'
    return 'OK ' + format(result.normalize(), 'f')


def serve(conn):
    operands = []
    with conn, conn.makefile('rb') as lines:
        try:
            for raw in lines:
                reply = reply_to(raw.decode(errors='replace').strip(), operands)
                conn.sendall(reply.encode() + b'\n')
                if reply == 'OK bye':
                    break
        except OSError:
            pass  # the client went away


def main():
    # Contexts are per thread; new threads copy DefaultContext.
    decimal.DefaultContext.prec = 50
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(('127.0.0.1', int(sys.argv[1]) if len(sys.argv) > 1 else 0))
    srv.listen(128)
    print('listening on 127.0.0.1:%d' % srv.getsockname()[1], flush=True)
    while True:
        conn, _ = srv.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


if __name__ == '__main__':
    try:
        main()
    except KeyboardInterrupt:
        pass
