// Type declarations of @soa/plugin (plugins/node). Checked by `tsc --noEmit -p test/types`.

/// <reference types="node" />
import { EventEmitter } from 'node:events';

/** A registry value (registry/SCHEMA.md), every field filled in. */
export interface Instance {
  service: string;
  host: string;
  port: number;
  weight: number;
  protocol: 'binary' | 'compact';
  transport: 'buffered' | 'framed';
  version: string;
  idl_hash: string;
  tags: Record<string, string>;
  pid: number;
  started_at: number;
  id: string;
  theader: boolean;
  tls: boolean;
  metrics_port: number;
  readonly leaving?: boolean;
}

export interface Logger { warn(message: string): void }

/** File paths, as in soa.yaml's `etcd.tls`. */
export interface EtcdTls { ca?: string; cert?: string; key?: string }

export interface EtcdOptions {
  /** Default ['127.0.0.1:2379']; `https://` or `tls` for TLS. */
  endpoints?: string[];
  /** Default '/soa'. */
  prefix?: string;
  user?: string;
  password?: string;
  tls?: EtcdTls;
  /** ms per etcd request; default 2000. */
  timeout?: number;
}

export interface RegistryOptions {
  etcd?: EtcdOptions;
  endpoints?: string[];
  prefix?: string;
  logger?: Logger;
}

export type BalancerName = 'round_robin' | 'weighted_round_robin' | 'weighted_random' | 'least_inflight' | 'consistent_hash';
export type HashKey = string | number | bigint | Buffer | null | undefined;

export interface ClientOptions {
  /** The service name, for errors and for THeader's `soa-service`. */
  service?: string;
  balancer?: BalancerName;
  /** ms per call (the deadline, retries included); default 1000. */
  timeout?: number;
  /** ms; default 250. */
  connectTimeout?: number;
  /** Retries after sending, for idempotent methods; default 2. */
  retries?: number;
  /** Retries allowed per call made (token bucket); default 0.1. */
  retryBudget?: number;
  /** Connections per instance; default 64. */
  poolSize?: number;
  /** ms an idle connection is kept; default 60000. */
  poolIdleTimeout?: number;
  /** Methods that may run twice. */
  idempotent?: string[];
  /** Our IDL fingerprint; default: soa_idl.js next to the generated module. */
  idlHash?: string;
  idlMismatch?: 'warn' | 'exclude';
  /** Failures in a row that eject an instance; default 3. */
  ejectAfter?: number;
  /** ms of the first ejection (doubling per ejection in a row, up to ejectCap); default 500. */
  ejectBase?: number;
  ejectCap?: number;
  /** ms to wait past the deadline for a THeader server's own `late` answer; default 50. */
  lateGrace?: number;
  /** The key of consistent_hash, from the call. */
  hashKey?: (method: string, args: unknown[]) => HashKey;
  /** Calls in flight at once on one connection (pipelined); default 8. */
  pipeline?: number;
  /** false: plain Thrift even to THeader instances (no deadline or identity travels); default true. */
  theader?: boolean;
  /** THeader `soa-caller`. */
  caller?: string;
  /** For instances with `tls: true`: PEM file paths (as soa.yaml's client.tls), and the name
   * to verify instead of the instance's host. The server's certificate is always verified. */
  tls?: { ca?: string; cert?: string; key?: string; serverName?: string };
  logger?: Logger;
}

export interface CallOptions {
  /** ms; overrides the client's timeout. */
  timeout?: number;
  /** A performance.now() value. */
  deadline?: number;
  hashKey?: HashKey;
  idempotent?: boolean;
}

/** The generated service module (require('./gen-nodejs/XService')) or its Client class. */
export type GeneratedService = { Client: new (...args: any[]) => any } | (new (...args: any[]) => any);

export interface Source { instances: Instance[] }

export class Resolver extends EventEmitter implements Source {
  readonly service: string;
  instances: Instance[];
  on(event: 'change', listener: (instances: Instance[]) => void): this;
  close(): Promise<void>;
}

export class Registry {
  constructor(options?: RegistryOptions);
  readonly prefix: string;
  list(service: string): Promise<Instance[]>;
  resolve(service: string): Promise<Resolver>;
  close(): void;
}

export interface PoolStats { opened: number; open: number; idle: number }

export class Client {
  constructor(source: Source, generated: GeneratedService, options?: ClientOptions);
  readonly service: string;
  /** The instance that served the latest successful call. */
  lastInstance: Instance | null;
  readonly counters: { calls: number; retries: number; ejections: number; wrongTarget: number };
  call<T = unknown>(method: string, ...args: unknown[]): Promise<T>;
  invoke<T = unknown>(method: string, args?: unknown[], options?: CallOptions): Promise<T>;
  stats(): Record<string, PoolStats>;
  close(): Promise<void>;
}

export function connect(service: string, generated: GeneratedService, options?: ClientOptions & RegistryOptions & { registry?: Registry }): Promise<Client>;

export function parseInstance(value: Buffer | string, key?: string, prefix?: string): Instance;
export function address(instance: { host: string; port: number }): string;
export function servicePrefix(prefix: string, service: string): string;

export class SoaError extends Error {}
export class ConfigError extends SoaError {}
export class DiscoveryError extends SoaError {}
export class NoInstanceAvailable extends DiscoveryError { readonly service: string }
export class TransportError extends SoaError { readonly address?: string; readonly sent: boolean }
export class ConnectError extends TransportError {}
export class WrongTarget extends TransportError {}
export class DeadlineExceeded extends SoaError { readonly address: string | null; readonly sent: boolean; readonly late: boolean }
export class RetryError extends SoaError { readonly attempts: Error[] }
export class InvalidInstance extends Error { readonly code: string }

export interface Picker { readonly instances: Instance[]; pick(key?: HashKey): Instance | null }
export interface Balancer { readonly name: BalancerName; picker(instances: Instance[]): Picker }
export const balancers: {
  RoundRobin: new () => Balancer;
  WeightedRoundRobin: new () => Balancer;
  WeightedRandom: new () => Balancer;
  LeastInflight: new (inflight?: Map<string, number>) => Balancer;
  ConsistentHash: new () => Balancer;
  byName(name: BalancerName, inflight?: Map<string, number>): Balancer;
  hash64(data: string | number | Buffer): bigint;
};

export const theader: {
  encode(protocol: 'binary' | 'compact', seqid: number, headers: Record<string, string>, payload: Buffer): Buffer;
  decode(frame: Buffer): { seqid: number; protocolId: number; headers: Record<string, string>; payload: Buffer };
};
