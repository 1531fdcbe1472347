<?php

namespace Soa;

/** etcd could not be read and no cached list of the service exists. */
final class DiscoveryError extends SoaException
{
}
