# SPDX-License-Identifier: Apache-2.0
#
# Throwaway certificates for the TLS tests, made with the openssl command-line tool: a CA,
# a server certificate for localhost/127.0.0.1 and client certificates whose CN is a
# device's name. EC P-256, valid for two days.

import os
import subprocess


def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


class Authority:
    """A CA in `directory`, named `name`; files are <name>.crt and <name>.key there."""

    def __init__(self, directory, name="ca"):
        self.dir = directory
        self.name = name
        self.cert = os.path.join(directory, name + ".crt")
        self.key = os.path.join(directory, name + ".key")
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                 "-keyout", self.key, "-out", self.cert, "-days", "2", "-subj", "/CN=%s test CA" % name,
                 cwd=directory)

    def issue(self, cn, file_stem, server=False):
        """Signs a new key for `cn`; returns (cert_path, key_path)."""
        cert = os.path.join(self.dir, file_stem + ".crt")
        key = os.path.join(self.dir, file_stem + ".key")
        csr = os.path.join(self.dir, file_stem + ".csr")
        _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key,
                 "-out", csr, "-subj", "/CN=" + cn, cwd=self.dir)
        ext = os.path.join(self.dir, file_stem + ".ext")
        with open(ext, "w") as f:
            if server:
                f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
            else:
                f.write("extendedKeyUsage=clientAuth\n")
        _openssl("x509", "-req", "-in", csr, "-CA", self.cert, "-CAkey", self.key, "-CAcreateserial",
                 "-out", cert, "-days", "2", "-extfile", ext, cwd=self.dir)
        return cert, key
