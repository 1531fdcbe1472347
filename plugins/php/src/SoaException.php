<?php

namespace Soa;

/**
 * The root of the plugin's own errors. Below it: ConfigError, DiscoveryError (and
 * NoInstanceAvailable), TransportError (and RpcTimeout, WrongTarget), RetryError. Exceptions
 * declared in the IDL and Thrift's TApplicationException are answers and pass through untouched.
 */
class SoaException extends \RuntimeException
{
}
