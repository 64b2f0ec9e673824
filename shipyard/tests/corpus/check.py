"""Exercise each native dependency of the corpus, and the standard library, inside an image.

Run with the image's own interpreter: python check.py [CHECK ...]. Prints one JSON object a
check: {"check": NAME, "ok": true|false, "detail": what it computed, or the error}. PG_DSN
names the PostgreSQL server that the psycopg2 check writes to and reads from.
"""

import json
import os
import sys
import tempfile

CHECKS = {}


def check(function):
    CHECKS[function.__name__] = function
    return function


@check
def numpy():
    """BLAS and LAPACK, from the OpenBLAS that auditwheel bundled and patchelf rewrote."""
    import numpy as np

    matrix = np.arange(1, 10, dtype=float).reshape(3, 3) + np.eye(3)
    return (
        f"{np.__version__} det={np.linalg.det(matrix):.1f} sum={float((matrix @ matrix).sum()):.0f}"
    )


@check
def pandas():
    """C extensions on numpy, and time zones from the system's tzdata."""
    import pandas as pd

    frame = pd.DataFrame({"team": list("abab"), "score": [1, 2, 3, 4]})
    stamp = pd.Timestamp("2026-01-01").tz_localize("Asia/Tokyo")
    return f"{pd.__version__} {frame.groupby('team').score.sum().to_dict()} {stamp}"


@check
def scipy():
    """Fortran code, with the libgfortran and OpenBLAS its wheel bundles."""
    import scipy
    import scipy.linalg
    import scipy.optimize
    import scipy.special

    solved = scipy.linalg.solve([[3, 1], [1, 2]], [9, 8]).round(3).tolist()
    minimum = scipy.optimize.minimize_scalar(lambda x: (x - 2) ** 2).x
    return f"{scipy.__version__} {solved} gamma(5)={scipy.special.gamma(5)} min={minimum:.2f}"


@check
def lxml():
    """libxml2 and libxslt, statically linked; a document in a legacy encoding."""
    from lxml import etree

    document = '<?xml version="1.0" encoding="SHIFT_JIS"?><a><b>日本</b></a>'.encode("shift_jis")
    root = etree.fromstring(document)
    transform = etree.XSLT(etree.XML(
        '<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">'
        '<xsl:template match="/"><x><xsl:value-of select="//b"/></x></xsl:template>'
        "</xsl:stylesheet>"
    ))  # fmt: skip
    return f"{root.xpath('//b/text()')[0]} {str(transform(root)).strip()}"


@check
def cryptography():
    """Rust and the OpenSSL that the wheel bundles: RSA signatures and Fernet."""
    from cryptography.fernet import Fernet
    from cryptography.hazmat.backends.openssl import backend
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    signature = key.sign(b"data", padding.PKCS1v15(), hashes.SHA256())
    key.public_key().verify(signature, b"data", padding.PKCS1v15(), hashes.SHA256())
    fernet = Fernet(Fernet.generate_key())
    return f"{backend.openssl_version_text()} {fernet.decrypt(fernet.encrypt(b'ok'))}"


@check
def pillow():
    """Codec libraries bundled under pillow.libs: PNG, JPEG, WebP, TIFF, FreeType."""
    import io

    from PIL import Image, features

    decoded = []
    for kind in ("PNG", "JPEG", "WEBP", "TIFF"):
        data = io.BytesIO()
        Image.new("RGB", (8, 8), "red").save(data, kind)
        data.seek(0)
        decoded.append(f"{kind}:{Image.open(data).getpixel((0, 0))[0]}")
    return " ".join(decoded) + f" freetype={features.check('freetype2')}"


@check
def shapely():
    """GEOS, a C++ library bundled with its own libstdc++ needs."""
    import shapely
    from shapely.geometry import Point

    return f"GEOS {shapely.geos_version_string} area={Point(0, 0).buffer(1).area:.2f}"


@check
def orjson():
    """Rust, built for the manylinux baseline."""
    import orjson

    return orjson.dumps({"a": [1, 2]}).decode()


@check
def pydantic():
    """pydantic-core: Rust, through PyO3."""
    import pydantic

    class Model(pydantic.BaseModel):
        number: int

    return f"{pydantic.VERSION} {Model(number='3').number}"


@check
def pyyaml():
    """libyaml's C loader."""
    import yaml

    loaded = yaml.load("a: [1, 2]", Loader=yaml.CSafeLoader)
    return f"libyaml={yaml.__with_libyaml__} {loaded}"


@check
def msgpack():
    """A Cython extension."""
    import msgpack

    return str(msgpack.unpackb(msgpack.packb({"a": 1})))


@check
def pyzmq():
    """libzmq, bundled, found through RPATH $ORIGIN."""
    import zmq

    context = zmq.Context()
    server, client = context.socket(zmq.PAIR), context.socket(zmq.PAIR)
    server.bind("inproc://corpus")
    client.connect("inproc://corpus")
    server.send(b"hi")
    return f"libzmq {zmq.zmq_version()} {client.recv()}"


@check
def argon2():
    """cffi, with the libffi of cffi.libs."""
    import argon2

    hasher = argon2.PasswordHasher()
    return str(hasher.verify(hasher.hash("secret"), "secret"))


@check
def psycopg2():
    """Built from its sdist against libpq-dev: libpq5 and its closure (GSSAPI, LDAP, SASL)
    in the runtime; a table written and read back on a real PostgreSQL server."""
    import psycopg2

    with psycopg2.connect(os.environ["PG_DSN"]) as connection, connection.cursor() as cursor:
        cursor.execute("create temporary table corpus (n int, s text)")
        cursor.execute("insert into corpus values (%s, %s)", (42, "héllo"))
        cursor.execute("select n, s from corpus")
        row = cursor.fetchone()
    assert row == (42, "héllo"), row
    return f"libpq {psycopg2.__libpq_version__} {row}"


@check
def mysqlclient():
    """Built from its sdist against libmariadb-dev: libmariadb3 and the plugins it loads by
    name; with no server to talk to, its own error is the proof that it runs."""
    import MySQLdb

    try:
        MySQLdb.connect(host="127.0.0.1", port=1, user="nobody", connect_timeout=2)
    except MySQLdb.OperationalError as error:
        return f"{MySQLdb.version_info[:3]} connection refused as it should be: {error.args[0]}"
    raise AssertionError("connected to port 1")


@check
def python_magic():
    """libmagic, which python-magic opens by name (ctypes.util.find_library): a runtime
    package (libmagic1) and its data (libmagic-mgc)."""
    import magic

    return magic.from_buffer(b"%PDF-1.4\n")


@check
def lightgbm():
    """A wheel that links the system's libgomp.so.1 and does not bundle it: the builder finds
    Debian's package that ships it, with no setting."""
    import lightgbm as lgb
    import numpy as np

    rng = np.random.default_rng(0)
    features = rng.normal(size=(200, 3))
    labels = (features[:, 0] > 0).astype(int)
    model = lgb.train({"objective": "binary", "verbose": -1, "num_threads": 2},
                      lgb.Dataset(features, labels), num_boost_round=10)  # fmt: skip
    accuracy = float(((model.predict(features) > 0.5) == labels).mean())
    assert accuracy > 0.9, f"accuracy {accuracy}"
    return f"{lgb.__version__} accuracy={accuracy:.2f}"


@check
def pyodbc():
    """A wheel that links the system's unixODBC (libodbc.so.2), which it does not bundle."""
    import pyodbc

    return f"{pyodbc.version}, drivers {pyodbc.drivers()}"


@check
def stdlib_curses():
    """curses and what is built on it: the terminal's description, from the terminfo database."""
    import curses

    os.environ["TERM"] = "xterm-256color"
    curses.setupterm()
    colors = curses.tigetnum("colors")
    assert colors == 256, f"xterm-256color has {colors} colors"
    return f"xterm-256color: {colors} colors, clear={curses.tigetstr('clear')!r}"


@check
def stdlib_ssl():
    """The CA certificates where OpenSSL looks: urllib, http.client and the rest verify."""
    import ssl

    authorities = ssl.create_default_context().cert_store_stats()["x509_ca"]
    assert authorities > 0, "no CA certificate loaded"
    return f"{ssl.OPENSSL_VERSION}: {authorities} CA certificates"


@check
def stdlib_zoneinfo():
    """Time zone data for zoneinfo, without the tzdata wheel."""
    import datetime
    import zoneinfo

    moment = datetime.datetime(2026, 1, 1, tzinfo=zoneinfo.ZoneInfo("Asia/Tokyo"))
    return f"{moment.isoformat()} of {len(zoneinfo.available_timezones())} zones"


@check
def stdlib_find_library():
    """ctypes.util.find_library, which runs ldconfig -p."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    assert name, "find_library('c') found nothing"
    return f"{name} pid>0: {ctypes.CDLL(name).getpid() > 0}"


@check
def stdlib_iconv():
    """glibc's iconv, as native code calls it: gconv modules, loaded by name."""
    import ctypes
    import ctypes.util

    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    libc.iconv_open.restype = ctypes.c_void_p
    handle = libc.iconv_open(b"UTF-8", b"EBCDIC-US")
    assert handle != ctypes.c_void_p(-1).value, "iconv cannot convert from EBCDIC-US"
    libc.iconv_close(ctypes.c_void_p(handle))
    return "EBCDIC-US to UTF-8: available"


@check
def stdlib_dbm_shelve():
    """dbm, and shelve on top of it."""
    import dbm
    import shelve

    path = os.path.join(tempfile.mkdtemp(), "shelf")
    with shelve.open(path) as shelf:  # noqa: S301 # shelve is what this checks
        shelf["key"] = [1, 2]
    with shelve.open(path) as shelf:  # noqa: S301
        value = shelf["key"]
    return f"{dbm.whichdb(path)} {value}"


@check
def stdlib_misc():
    """The rest that apps use: sqlite3, decimal, compression, hashes, netdb, users, locale,
    multiprocessing, subprocess, readline, curses, name resolution."""
    import bz2
    import curses  # noqa: F401
    import decimal
    import getpass
    import hashlib
    import locale
    import lzma
    import multiprocessing
    import pwd
    import readline  # noqa: F401
    import socket
    import sqlite3
    import subprocess
    import uuid

    locale.setlocale(locale.LC_ALL, "")
    with multiprocessing.Pool(2) as pool:
        squares = pool.map(abs, [-1, -2])
    child = subprocess.run([sys.executable, "-c", "print(1)"], capture_output=True, text=True)
    return (
        f"sqlite {sqlite3.sqlite_version}, decimal {decimal.Decimal(1) / 7:.3}, "
        f"lzma+bz2 {len(lzma.compress(b'x')) + len(bz2.compress(b'x'))}, "
        f"uuid{uuid.uuid4().version}, sha3 {hashlib.sha3_256(b'').hexdigest()[:6]}, "
        f"https={socket.getservbyname('https')}, udp={socket.getprotobyname('udp')}, "
        f"{getpass.getuser()} {pwd.getpwuid(os.getuid()).pw_dir}, "
        f"pool {squares}, child {child.stdout.strip()}, "
        f"localhost {socket.getaddrinfo('localhost', 80)[0][4][0]}"
    )


def main(names: list[str]) -> None:
    for name, function in CHECKS.items():
        if names and name not in names:
            continue
        try:
            result = {"check": name, "ok": True, "detail": str(function())}
        except BaseException as error:  # whatever fails is the finding
            result = {"check": name, "ok": False, "detail": f"{type(error).__name__}: {error}"}
        print(json.dumps({**result, "about": " ".join(function.__doc__.split())}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
