/**
 * Reading TLS material (PEM certificates and keys) named in the config, with errors that
 * say which file and why.
 */
import { createPrivateKey, X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { isAbsolute, resolve } from "node:path";
import type { ConfigPath } from "./source.ts";

type Fail = (path: ConfigPath, message: string) => void;

/** Reads a PEM file that must hold a block of `kind` (e.g. "PRIVATE KEY" also matches "EC PRIVATE KEY"). */
export function readPem(file: string, kind: string, baseDir: string, path: ConfigPath, fail: Fail): string | null {
  const full = isAbsolute(file) ? file : resolve(baseDir, file);
  let text: string;
  try {
    text = readFileSync(full, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const reason = code === "ENOENT" ? "no such file" : code === "EACCES" ? "permission denied" : code === "EISDIR" ? "it is a folder" : (code ?? (error as Error).message);
    fail(path, `cannot read ${full}: ${reason}`);
    return null;
  }
  if (!new RegExp(`-----BEGIN [A-Z ]*${kind}-----`).test(text)) {
    fail(path, `${full} holds no PEM ${kind.toLowerCase()} (no "-----BEGIN ...${kind}-----" line)`);
    return null;
  }
  return text;
}


/** Client certificate settings of a listener, as written. */
export interface ClientCertificatesConfig {
  ca: string | string[];
  mode?: "request" | "require";
}

/** Reads and checks the CA files of `client_certificates`; null when any is wrong. */
export function compileClientCertificates(
  config: ClientCertificatesConfig,
  baseDir: string,
  path: ConfigPath,
  fail: Fail,
): { ca: string[]; mode: "request" | "require" } | null {
  const files = typeof config.ca === "string" ? [config.ca] : config.ca;
  const ca: string[] = [];
  let ok = true;
  files.forEach((file, i) => {
    const filePath = typeof config.ca === "string" ? [...path, "ca"] : [...path, "ca", i];
    const text = readCaFile(file, baseDir, filePath, fail);
    if (text === null) ok = false;
    else ca.push(text);
  });
  return ok ? { ca, mode: config.mode ?? "require" } : null;
}

/** Reads a PEM file of CA certificates; each must parse and be a CA. */
function readCaFile(file: string, baseDir: string, path: ConfigPath, fail: Fail): string | null {
  const text = readPem(file, "CERTIFICATE", baseDir, path, fail);
  if (text === null) return null;
  const blocks = text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  for (const block of blocks) {
    let certificate: X509Certificate;
    try {
      certificate = new X509Certificate(block);
    } catch (error) {
      fail(path, `cannot parse a certificate in ${file}: ${(error as Error).message}`);
      return null;
    }
    if (!certificate.ca) {
      fail(path, `${file} holds a certificate that is not a CA (${certificate.subject.replaceAll("\n", ",")}); give the CA that signs the certificates`);
      return null;
    }
  }
  return text;
}

/** TLS settings toward an upstream, as written. */
export interface UpstreamTlsConfig {
  ca?: string;
  cert?: string;
  key?: string;
  server_name?: string;
  verify?: boolean;
}

/** The `tls` option of Bun's fetch for an upstream. */
export interface UpstreamTls {
  ca?: string;
  cert?: string;
  key?: string;
  serverName?: string;
  rejectUnauthorized: boolean;
}

/** Reads the files of an upstream's `tls`; null when any is wrong. */
export function compileUpstreamTls(config: UpstreamTlsConfig, baseDir: string, path: ConfigPath, fail: Fail): UpstreamTls | null {
  let ok = true;
  const out: UpstreamTls = { rejectUnauthorized: config.verify ?? true };
  if (config.ca !== undefined) {
    const ca = readCaFile(config.ca, baseDir, [...path, "ca"], fail);
    if (ca === null) ok = false;
    else out.ca = ca;
  }
  if ((config.cert === undefined) !== (config.key === undefined)) {
    fail(path, "cert and key go together (the client certificate and its private key)");
    return null;
  }
  if (config.cert !== undefined && config.key !== undefined) {
    const cert = readPem(config.cert, "CERTIFICATE", baseDir, [...path, "cert"], fail);
    const key = readPem(config.key, "PRIVATE KEY", baseDir, [...path, "key"], fail);
    if (cert === null || key === null) return null;
    try {
      const x509 = new X509Certificate(cert);
      if (!x509.checkPrivateKey(createPrivateKey(key))) {
        fail([...path, "key"], `the private key in ${config.key} does not belong to the certificate in ${config.cert}`);
        return null;
      }
    } catch (error) {
      fail([...path, "cert"], `cannot use ${config.cert} with ${config.key}: ${(error as Error).message}`);
      return null;
    }
    out.cert = cert;
    out.key = key;
  }
  if (config.server_name !== undefined) out.serverName = config.server_name;
  return ok ? out : null;
}
